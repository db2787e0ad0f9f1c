"""Builders for the PostgreSQL store's tests: signed logs and checked batches."""

from __future__ import annotations

import random
from typing import Any

from hub.examine import Checked, examine
from hub.protocol import entry, record
from hub.protocol.identity import Identity
from hub.shared import generator
from tests.helpers import ENTERED_AT


def ident(n: int) -> Identity:
    return Identity.from_seed(n.to_bytes(32, "big"))


def sign(who: Identity, bodies: list[dict[str, Any]], start: int = 1,
         prev: bytes = record.GENESIS) -> list[bytes]:  # fmt: skip
    """``bodies`` signed as consecutive records of ``who``'s log from ``start``: raw bytes."""
    out = []
    for i, f in enumerate(bodies):
        r = record.make(who, start + i, prev, entry.encode_body(entry.parse(f), ENTERED_AT))
        out.append(r.raw)
        prev = r.hash
    return out


def check(raws: list[bytes]) -> list[Checked]:
    """What the hub's examine workers hand the store for a batch."""
    return [examine(i, raw, None) for i, raw in enumerate(raws)]


def forms(n: int, seed: int, region: str = "99", form: str = "PPWP") -> list[dict[str, Any]]:
    """``n`` consistent forms for distinct TPS under ``region`` (synthetic codes)."""
    rng = random.Random(seed)
    codes = generator.tps_codes(None, region, rng)
    return [generator.make_form(rng, next(codes), form, operator="Op") for _ in range(n)]
