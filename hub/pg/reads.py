"""The reads of a hub on PostgreSQL (``hub.storage.HubStorage``'s read side): heads, devices,
records a page at a time, forks, results, status and counters, each from indexed queries or
the aggregate rows the push transaction keeps (``hub.pg.derived``, ``hub.pg.status``), one
statement or one REPEATABLE READ snapshot per call. Nothing is kept between calls.
``PgStore`` (hub/pg/store.py) is a ``PgReads`` with the writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hub.memory import Confirmed, DeviceRow
from hub.protocol import state, worklist
from hub.protocol.enroll import Endorsement
from hub.protocol.ingest import Head
from hub.status import DeviceInfo
from hub.storage import Counters, NodeInfo, OriginView

from . import derived
from . import quotas as pg_quotas
from . import status as pg_status
from .pool import Db
from .rows import DEVICE_COLS, device_row, head_of


class PgReads:
    """The read side of ``PgStore`` over its ``db`` (``hub.pg.pool.Db``)."""

    db: Db
    commits: int  # pushes committed by this process (the counters show it)

    # -- devices -----------------------------------------------------------------------------

    async def device(self, public: bytes) -> DeviceRow | None:
        r = await self.db.fetchrow(f"SELECT {DEVICE_COLS} FROM devices WHERE public = $1", public)
        return device_row(r) if r is not None else None

    async def find_device(self, node_id: str) -> DeviceRow | None:
        want = node_id.strip()
        r = await self.db.fetchrow(
            f"SELECT {DEVICE_COLS} FROM devices WHERE node_id = $1 OR encode(public, 'hex') = $2",
            want.upper(), want.lower(),
        )  # fmt: skip
        return device_row(r) if r is not None else None

    async def devices(self) -> list[DeviceRow]:
        rows = await self.db.fetch(f"SELECT {DEVICE_COLS} FROM devices ORDER BY first_seen, id")
        return [device_row(r) for r in rows]

    async def heads(self, publics: Iterable[bytes] | None = None) -> dict[bytes, Head]:
        """Heads of the given origins (all when None): the version vector a sender asks for."""
        if publics is None:
            rows = await self.db.fetch(
                "SELECT public, head_seq, head_hash FROM devices WHERE head_seq > 0"
            )
        else:
            rows = await self.db.fetch(
                "SELECT public, head_seq, head_hash FROM devices"
                " WHERE public = ANY($1::bytea[]) AND head_seq > 0",
                list(publics),
            )
        return {bytes(r[0]): head_of(r) for r in rows}

    async def record_raw(self, public: bytes, seq: int) -> bytes | None:
        raw = await self.db.fetchval(
            "SELECT r.raw FROM records r JOIN devices d ON d.id = r.dev"
            " WHERE d.public = $1 AND r.seq = $2",
            public, seq,
        )  # fmt: skip
        return bytes(raw) if raw is not None else None

    async def records_after(self, dev: int, after_seq: int, limit: int) -> list[bytes]:
        """Up to ``limit`` raw records of ``dev``'s log after ``after_seq``, in seq order."""
        rows = await self.db.fetch(
            "SELECT raw FROM records WHERE dev = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            dev, after_seq, limit,
        )  # fmt: skip
        return [bytes(r[0]) for r in rows]

    async def fork_evidence(self) -> list[tuple[int, int, bytes, bytes | None]]:
        """(dev, seq, evidence raw, held raw) of every fork."""
        rows = await self.db.fetch("SELECT dev, seq, raw, held_raw FROM forks ORDER BY id")
        return [(r[0], r[1], bytes(r[2]), bytes(r[3]) if r[3] else None) for r in rows]

    async def results(
        self, election: str, level: str = "national", code: str = ""
    ) -> dict[str, Any]:
        async with self.db.read() as con:
            return await derived.results(con, election, level, code)

    async def status_counts(self) -> dict[str, Any]:
        async with self.db.read() as con, con.transaction(isolation="repeatable_read"):
            return await derived.status_counts(con)

    async def conflicts(self, limit: int = 200) -> list[dict[str, Any]]:
        async with self.db.read() as con:
            return await derived.conflicts(con, limit)

    # -- HubStorage (hub.storage): the service's reads -------------------------------------

    async def lookup(self, node_id: str) -> DeviceRow | None:
        return await self.find_device(node_id)

    async def heads_of(self, publics: Sequence[bytes]) -> dict[bytes, Head]:
        return await self.heads(publics)

    async def holds_endorsement(self, e: Endorsement) -> bool:
        held = await self.db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM endorsements WHERE device = $1 AND raw = $2)"
            " OR EXISTS (SELECT 1 FROM devices WHERE public = $1 AND endorsement = $2)",
            e.device, e.raw,
        )  # fmt: skip
        return bool(held)

    async def upstream_receipt(self, public: bytes) -> Confirmed | None:
        r = await self.db.fetchrow(
            "SELECT u.seq, u.hash, u.receipt, u.at FROM upstream u JOIN devices d ON d.id = u.dev"
            " WHERE d.public = $1",
            public,
        )
        return Confirmed(r[0], bytes(r[1]), bytes(r[2]), r[3]) if r is not None else None

    async def origin_head(self, public: bytes) -> OriginView:
        """One statement, so one snapshot: the row (head included) and upstream's receipt."""
        r = await self.db.fetchrow(
            f"SELECT {DEVICE_COLS}, u.seq AS up_seq, u.hash AS up_hash, u.receipt, u.at"
            " FROM devices LEFT JOIN upstream u ON u.dev = devices.id WHERE public = $1",
            public,
        )
        if r is None:
            return OriginView(None, Head(), None)
        c = None
        if r["up_seq"] is not None:
            c = Confirmed(r["up_seq"], bytes(r["up_hash"]), bytes(r["receipt"]), r["at"])
        return OriginView(device_row(r), head_of(r), c)

    async def forks(self, limit: int = -1, after: int = 0) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT f.id, d.node_id, d.name, f.seq, f.raw, f.held_raw, f.detected_at,"
            " d.approved_at IS NULL FROM forks f"
            " JOIN devices d ON d.id = f.dev WHERE f.id > $1 ORDER BY f.id"
            + (" LIMIT $2" if limit >= 0 else ""),
            after, *((limit,) if limit >= 0 else ()),
        )  # fmt: skip
        return [
            {"id": r[0], "device": r[1], "name": r[2], "seq": r[3], "detected_at": r[6],
             "evidence": bytes(r[4]).hex(), "held": bytes(r[5]).hex() if r[5] else None,
             "unapproved": bool(r[7])}
            for r in rows
        ]  # fmt: skip

    async def counted_facts(self, q: worklist.Query) -> list[state.EntryFacts]:
        """The counted entries under ``q``'s election, form and TPS prefix (an indexed range of
        ``records_key``), read per request: nothing is kept."""
        rows = await self.db.fetch(
            "SELECT r.hash, d.public, r.election, r.form, r.tps, r.numbers, r.supersedes,"
            " r.users_j, r.scans FROM records r JOIN devices d ON d.id = r.dev"
            " WHERE ($1::text IS NULL OR r.election = $1) AND ($2::text IS NULL OR r.form = $2)"
            f" AND r.tps LIKE $3 AND {derived.COUNTED}",
            q.election, q.form, q.tps_prefix + "%",
        )  # fmt: skip
        return [
            state.EntryFacts(
                bytes(r[0]),
                bytes(r[1]),
                (r[2], r[3], r[4]),
                bytes(r[5]),
                bytes(r[6]) if r[6] is not None else None,
                r[7],
                tuple(x for x in r[8].split(",") if x),
            )
            for r in rows
        ]

    async def status(self, node: NodeInfo, now: float) -> dict[str, Any]:
        """The status dict from counters, aggregates and indexed queries (``hub.pg.status``)."""
        async with self.db.read() as con, con.transaction(isolation="repeatable_read"):
            return await pg_status.build(con, node, now)

    async def device_list(self, hub_public: bytes) -> list[DeviceInfo]:
        async with self.db.read() as con:
            return await pg_status.device_list(con, hub_public)

    async def device_page(
        self, hub_public: bytes, after: tuple[int, str] | None, limit: int
    ) -> list[DeviceInfo]:
        async with self.db.read() as con:
            return await pg_status.device_list(con, hub_public, after=after, limit=limit)

    async def device_info(self, d: DeviceRow, hub_public: bytes) -> DeviceInfo:
        async with self.db.read() as con:
            (info,) = await pg_status.device_list(con, hub_public, d.public)
            return info

    async def counters(self) -> Counters:
        async with self.db.read() as con:
            records, forks, unapproved, by_state = await pg_status.counters(con)
            _pending, held = await pg_quotas.held(con)
        return Counters(records, self.commits, forks, by_state, unapproved,
                        held.records, held.bytes)  # fmt: skip

    # -- meta --------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> bytes | None:
        v = await self.db.fetchval("SELECT value FROM meta WHERE key = $1", key)
        return bytes(v) if v is not None else None

    async def set_meta(self, key: str, value: bytes) -> None:
        await self.db.execute(
            "INSERT INTO meta(key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            key, value,
        )  # fmt: skip
