"""What the PostgreSQL store reads back: a device row, an origin's head, and the shape of a
checked record it stores."""

from __future__ import annotations

from typing import Protocol

import asyncpg

from hub.memory import DeviceRow
from hub.protocol import state
from hub.protocol.ingest import Examined, Head

DEVICE_COLS = (
    "id, public, node_id, name, role, state, first_seen, last_seen, approved_at, revoked_at,"
    " revoked_after_seq, forked, endorsement, head_seq, head_hash"
)


class CheckedLike(Protocol):
    """A record after the CPU-heavy checks, with what the store derives from its body
    (``hub.examine.Checked`` is one)."""

    @property
    def ex(self) -> Examined: ...
    @property
    def flags(self) -> str: ...
    @property
    def votes(self) -> str: ...
    @property
    def facts(self) -> state.EntryFacts | None: ...


def device_row(r: asyncpg.Record) -> DeviceRow:
    return DeviceRow(
        r["id"], bytes(r["public"]), r["node_id"], r["name"], r["role"], r["state"],
        r["first_seen"], r["last_seen"], r["approved_at"], r["revoked_at"],
        r["revoked_after_seq"], r["forked"],
        bytes(r["endorsement"]) if r["endorsement"] is not None else None,
    )  # fmt: skip


def head_of(r: asyncpg.Record) -> Head:
    return Head(r["head_seq"], bytes(r["head_hash"])) if r["head_seq"] else Head()
