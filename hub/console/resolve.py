"""Resolving a conflict: a new signed entry that supersedes, made by the coordinator station.

The coordinator station is an identity like any operator laptop's: an Ed25519 key in
``<hub data>/coordinator/node.key`` (0600, made on first use), enrolled at this hub with role
``laptop`` under the name ``Koordinator <hub name>`` and approved by the coordinator's own
action in the console (a resolution is an admin action, allowed only from the hub machine).
Its log lives in the hub's store like any laptop's: the next seq and prev hash are the hub's
head for it. Its entries go through ``HubService.push`` like a laptop's push, carry its
endorsement upstream, and verify at the root.

To resolve ``(election, form, TPS)`` the coordinator picks the live entry the paper supports.
For every other live entry whose numbers differ, the station signs a copy of the chosen
reading (same numbers and scans, operator ``Koordinator``, a note naming the choice) with
``supersedes`` set to that entry. Afterwards the live entries are the chosen one and the
station's copies, all with the same numbers: the TPS is *verified* (or *single* when the chosen
reading was the station's own). Nothing is edited or deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from hub.errors import NotFound
from hub.memory import Facts
from hub.protocol import clock, enroll, entry, record, state
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import Identity
from hub.protocol.ingest import APPROVED, PENDING
from hub.service import HubService
from hub.shared import keyfile

FactsOf = Callable[[state.Key], Awaitable[list[Facts]]]

FOLDER = "coordinator"
OPERATOR = "Koordinator"


class NotResolvable(ProtocolError):
    code = "not_resolvable"


@dataclass(frozen=True, slots=True)
class Reading:
    """One live entry of a TPS/form, decoded for the side-by-side view."""

    hash: bytes
    device: str  # node id
    device_name: str
    seq: int
    body: dict[str, object]


class Coordinator:
    """The coordinator station of one hub (see the module docstring)."""

    def __init__(self, service: HubService, data_dir: Path, facts_of: FactsOf):
        self.service = service
        self.facts_of = facts_of  # a TPS's stored facts (the console's index, off the loop)
        self.folder = data_dir / FOLDER
        self._ident: Identity | None = None
        self._lock = asyncio.Lock()

    def identity(self) -> Identity:
        if self._ident is None:
            self.folder.mkdir(mode=0o700, exist_ok=True)
            self._ident, _ = keyfile.load_or_create(self.folder)
        return self._ident

    async def enrolled(self) -> Identity:
        """The station's identity, enrolled and approved at this hub."""
        ident = self.identity()
        svc = self.service
        d = svc.sqlite_store().devices.get(ident.public)
        if d is None or d.state == PENDING:
            name = f"{OPERATOR} {svc.name}".strip()[:60]
            req = enroll.make_request(ident, svc.ident.public, name, "laptop", clock.now_s())
            await svc.enroll(req)
            d = svc.sqlite_store().devices[ident.public]
        if d.state != APPROVED:
            if d.state == PENDING:
                await svc.approve(d.node_id, "laptop")
            else:
                raise NotResolvable(
                    f"the coordinator station {d.node_id} is {d.state} at this hub; "
                    "its corrections cannot be counted"
                )
        return ident

    async def readings(self, key: state.Key) -> tuple[str, list[Reading]]:
        """The TPS's status and its live entries, decoded (oldest first)."""
        facts = await self.facts_of(key)
        store = self.service.sqlite_store()
        devices = store.devices_by_id
        # the counted (accepted) ones, by the devices' state as of now
        group = [f for f in facts if f.seq <= devices[f.dev].forward_limit(f.seq)]
        if not group:
            raise NotFound(f"no counted entry for {key[1]} TPS {key[2]}")
        st = state.derive([f.facts for f in group])[key]
        out = []
        for f in group:
            if f.facts.hash not in st.live:
                continue
            d = devices[f.dev]
            raw = await store.record_raw(d.public, f.seq)
            if raw is None:
                continue
            body = entry.decode_body(record.decode(raw).body)
            out.append(Reading(f.facts.hash, d.node_id, d.name, f.seq, body))
        out.sort(key=lambda r: (int(str(r.body.get("entered_at", 0))), r.device, r.seq))
        return st.status, out

    async def resolve(self, key: state.Key, chosen: bytes) -> list[bytes]:
        """Sign and push the superseding entries; returns their hashes."""
        async with self._lock:
            status, readings = await self.readings(key)
            if status != state.CONFLICT:
                raise NotResolvable(f"{key[1]} TPS {key[2]} is {status}, not in conflict")
            pick = next((r for r in readings if r.hash == chosen), None)
            if pick is None:
                raise NotResolvable("the chosen reading is not a live entry of this TPS any more")
            ident = await self.enrolled()
            numbers = entry.numbers(pick.body)
            losers = [r for r in readings if entry.numbers(r.body) != numbers]
            head = self.service.sqlite_store().head_of(ident.public)
            seq, prev = head.seq, head.hash if head.seq else record.GENESIS
            now = clock.now_s()
            raws = []
            for r in losers:
                src = {k: v for k, v in pick.body.items() if k != "entered_at"}
                src["operator"] = OPERATOR
                src["note"] = (
                    f"koreksi konsol: bacaan {pick.device}#{pick.seq} sesuai kertas; "
                    f"menggantikan {r.device}#{r.seq}"
                )[:200]
                src["supersedes"] = r.hash.hex()
                body = entry.encode_body(entry.parse(src), now)
                seq += 1
                rec = record.make(ident, seq, prev, body)
                prev = rec.hash
                raws.append(rec)
            pushed = await self.service.push([r.raw for r in raws])
            if pushed.result.plan.counts()["accept"] != len(raws):
                raise NotResolvable(f"the hub did not accept the corrections: {pushed.to_wire()}")
            return [r.hash for r in raws]
