"""A hub's store in PostgreSQL, shared by several receiver processes (DESIGN §4b).

``store = await PgStore.open(dsn)`` ... ``await store.close()``. Every call is one
transaction on a pooled connection; nothing about devices, heads or entries is kept in this
process between calls, so any number of receivers can serve the same root.

How receivers coordinate (docs/scaling.md "Many receivers, one database"):

- **READ COMMITTED plus row locks.** ``push`` first creates the batch's unknown origins
  (``INSERT ... ON CONFLICT DO NOTHING``), then locks the batch's device rows in key order
  (``SELECT ... FOR UPDATE ORDER BY public``). Everything the planner needs about an origin
  (head, state, fork flag, the bytes already held for replayed seqs) is read *after* that lock,
  by statements that each see the latest committed data; so two receivers handed the same
  origin at the same moment run one after the other, and the second sees the first's records:
  its copies are duplicates, a different record for a held seq is a fork, detected once.
- **The database refuses what must never happen,** whatever a bug upstream does:
  ``PRIMARY KEY (dev, seq)`` (no second record for a seq: a plain INSERT, so a violation
  aborts the transaction instead of being ignored), a trigger refusing a head that goes back or
  a fork flag that clears, triggers making records and forks immutable,
  ``UNIQUE (dev, seq, sha256(raw))`` on forks.
- **Answer after COMMIT.** ``push`` returns only when the transaction has committed; a receiver
  signs receipts from what it returns. If the connection breaks before COMMIT's answer arrives
  (a database restart), ``push`` raises ``PgUnavailable`` and nothing is receipted; a replay
  of the same batch is then accepted or found duplicate, exactly once either way.
- **Retry** on serialization failure or deadlock (40001, 40P01): the whole transaction again,
  up to ``RETRIES`` times with jittered backoff. Lock order (devices by public key, then
  ``tps_state`` keys, then kecamatan aggregates, each sorted) makes deadlocks unlikely.
- Derived state and results move in the same transaction as the records (``hub.pg.derived``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from hub.protocol import identity, ingest, state
from hub.protocol.enroll import Endorsement
from hub.protocol.errors import ProtocolError
from hub.protocol.ingest import APPROVED, PENDING, REVOKED, Examined, Head, Plan
from hub.store import DeviceRow
from hub.transaction import enroll_again

from . import derived
from .schema import Conn, migrate

log = logging.getLogger(__name__)

RETRIES = 5
RETRY_ON = (asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError)
# The database is gone or restarting: nothing of the transaction can be known to be stored.
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash recovery
    asyncpg.exceptions.CannotConnectNowError,
)
_DEVICE_COLS = (
    "id, public, node_id, name, role, state, first_seen, last_seen, approved_at, revoked_at,"
    " revoked_after_seq, forked, endorsement, head_seq, head_hash"
)


class PgUnavailable(ProtocolError):
    """The database cannot be reached or failed mid-transaction: nothing is receipted, the
    sender keeps its records and tries again (HTTP 503)."""

    code = "unavailable"


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


@dataclass(slots=True)
class PushResult:
    plan: Plan
    heads: dict[bytes, Head] = field(default_factory=dict)  # heads of every origin touched
    new_devices: list[bytes] = field(default_factory=list)


def _device(r: asyncpg.Record) -> DeviceRow:
    return DeviceRow(
        r["id"], bytes(r["public"]), r["node_id"], r["name"], r["role"], r["state"],
        r["first_seen"], r["last_seen"], r["approved_at"], r["revoked_at"],
        r["revoked_after_seq"], r["forked"],
        bytes(r["endorsement"]) if r["endorsement"] is not None else None,
    )  # fmt: skip


def _head(r: asyncpg.Record) -> Head:
    return Head(r["head_seq"], bytes(r["head_hash"])) if r["head_seq"] else Head()


class PgStore:
    """The PostgreSQL store of one root (or big provincial hub), shared by its receivers."""

    def __init__(self, pool: asyncpg.Pool, *, refuse_unknown: bool = False):
        self.pool = pool
        self.refuse_unknown = refuse_unknown
        self.retries = 0  # transactions run again after a serialization failure or deadlock

    @classmethod
    async def open(
        cls, dsn: str, *, refuse_unknown: bool = False, min_size: int = 1, max_size: int = 8
    ) -> PgStore:
        """Connect, migrate the schema (once, whoever comes first) and return the store."""
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, command_timeout=60
            )
        except UNAVAILABLE as exc:
            raise PgUnavailable(f"cannot reach the database: {exc}") from exc
        try:
            async with pool.acquire() as con:
                await migrate(con)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, refuse_unknown=refuse_unknown)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        """One transaction, READ COMMITTED; connection failures become PgUnavailable."""
        try:
            async with self.pool.acquire() as con, con.transaction():
                yield con
        except UNAVAILABLE as exc:
            raise PgUnavailable(
                f"the database failed during a write ({type(exc).__name__}: {exc}); nothing "
                "of it is receipted. The sender keeps its entries and sends them again."
            ) from exc

    async def _run(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(con, *args)`` in a transaction, again after a serialization failure or a
        deadlock (the whole transaction rolled back, so running it again is safe)."""
        for attempt in range(RETRIES + 1):
            try:
                async with self._tx() as con:
                    return await fn(con, *args)
            except RETRY_ON as exc:
                if attempt == RETRIES:
                    raise
                self.retries += 1
                log.debug("%s: %s, running the transaction again", what, type(exc).__name__)
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    # -- records -----------------------------------------------------------------------------

    async def push(
        self, checked: Sequence[CheckedLike], now: int, endorsements: Sequence[Endorsement] = ()
    ) -> PushResult:
        """Store a checked batch; returns once it is committed (or raises, storing nothing)."""
        result: PushResult = await self._run("push", self._push, checked, now, endorsements)
        for origin in result.new_devices:
            log.warning(
                "new laptop %s is pending: check its comparison code, then approve it",
                identity.fingerprint(origin),
            )
        for ex, _held in result.plan.forks:
            assert ex.record is not None
            log.error(
                "FORK: device %s signed two different entries as seq %d. Both are kept as "
                "evidence; nothing more is accepted from it.",
                identity.fingerprint(ex.record.origin), ex.record.seq,
            )  # fmt: skip
        return result

    async def _push(
        self,
        con: Conn,
        checked: Sequence[CheckedLike],
        now: int,
        endorsements: Sequence[Endorsement],
    ) -> PushResult:
        changed: set[int] = set()
        if endorsements:
            changed |= await self._endorse(con, endorsements, now)
        ex_list = [c.ex for c in checked]
        by_index = {c.ex.index: c for c in checked}
        origins = sorted(
            {ex.record.origin for ex in ex_list if ex.record is not None and ex.error is None}
        )
        new: list[bytes] = []
        if origins and not self.refuse_unknown:
            new = [
                bytes(r[0])
                for r in await con.fetch(
                    "INSERT INTO devices(public, node_id, first_seen, last_seen)"
                    " SELECT p, n, $3, $3 FROM unnest($1::bytea[], $2::text[]) u(p, n)"
                    " ORDER BY p ON CONFLICT (public) DO NOTHING RETURNING public",
                    origins,
                    [identity.fingerprint(o) for o in origins],
                    now,
                )
            ]
        rows = await con.fetch(
            f"SELECT {_DEVICE_COLS} FROM devices WHERE public = ANY($1::bytea[])"
            " ORDER BY public FOR UPDATE",
            origins,
        )
        devices = {bytes(r["public"]): _device(r) for r in rows}
        heads = {bytes(r["public"]): _head(r) for r in rows if r["head_seq"]}
        policies = {p: d.policy() for p, d in devices.items()}
        existing = await self._existing(con, devices, ingest.needed_existing(ex_list, heads))
        plan = ingest.plan(ex_list, heads, existing, policies, refuse_unknown=self.refuse_unknown)

        cols: list[list[Any]] = [[] for _ in range(14)]
        counted_keys: set[state.Key] = set()
        fresh: dict[state.Key, list[derived.Fact]] = {}
        added: dict[bytes, int] = {}
        for ex in plan.accepted:
            rec, c = ex.record, by_index[ex.index]
            ef = c.facts
            assert rec is not None and ef is not None
            d = devices[rec.origin]
            row = (d.id, rec.seq, rec.hash, rec.raw, now, *ef.key, c.flags, ef.users_total_j,
                   ef.numbers, ef.supersedes, ",".join(ef.scans), c.votes)  # fmt: skip
            for i, v in enumerate(row):
                cols[i].append(v)
            added[rec.origin] = added.get(rec.origin, 0) + 1
            if rec.seq <= d.forward_limit(rec.seq):
                counted_keys.add(ef.key)
                origin = d.id.to_bytes(8, "big")  # as derived state reads it back
                f = state.EntryFacts(rec.hash, origin, ef.key, ef.numbers, ef.supersedes)
                fresh.setdefault(ef.key, []).append(derived.Fact(f, c.votes, c.flags))
        if plan.accepted:
            await con.execute(
                "INSERT INTO records(dev, seq, hash, raw, received_at, election, form, tps,"
                " flags, users_j, numbers, supersedes, scans, votes)"
                " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[],"
                " $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int[],"
                " $11::bytea[], $12::bytea[], $13::text[], $14::text[])",
                *cols,
            )
        forked: set[int] = set()
        for ex, held in plan.forks:
            assert ex.record is not None
            d = devices[ex.record.origin]
            await con.execute(
                "INSERT INTO forks(dev, seq, raw, held_raw, detected_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                d.id, ex.record.seq, ex.record.raw, held, now,
            )  # fmt: skip
            forked.add(d.id)
        touched = sorted({o.origin for o in plan.outcomes if o.origin is not None} & devices.keys())
        if touched:
            final = {o: plan.heads.get(o, heads.get(o, Head())) for o in touched}
            await con.execute(
                "UPDATE devices d SET head_seq = u.s, head_hash = u.h, records = d.records + u.n,"
                " forked = d.forked OR u.f, last_seen = $6"
                " FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[],"
                " $5::boolean[]) u(id, s, h, n, f) WHERE d.id = u.id",
                [devices[o].id for o in touched], [final[o].seq for o in touched],
                [final[o].hash for o in touched], [added.get(o, 0) for o in touched],
                [devices[o].id in forked for o in touched], now,
            )  # fmt: skip
        changed |= forked
        if changed:  # a device's counted records changed: derive its keys from the database
            counted_keys |= await derived.keys_of_devices(con, changed)
            fresh = {}
        await derived.refresh(con, counted_keys, fresh)
        out_heads = {o: final[o] for o in touched} if touched else {}
        return PushResult(plan, out_heads, new)

    async def _existing(
        self,
        con: Conn,
        devices: dict[bytes, DeviceRow],
        pairs: list[tuple[bytes, int]],
    ) -> dict[tuple[bytes, int], bytes]:
        """Raw bytes held for (origin, seq) pairs, in one query (replays are the normal
        recovery path: they must not cost a query per record)."""
        if not pairs:
            return {}
        public_of = {d.id: p for p, d in devices.items()}
        rows = await con.fetch(
            "SELECT r.dev, r.seq, r.raw FROM records r JOIN unnest($1::bigint[], $2::bigint[])"
            " u(dev, seq) ON r.dev = u.dev AND r.seq = u.seq",
            [devices[o].id for o, _ in pairs], [s for _, s in pairs],
        )  # fmt: skip
        return {(public_of[r[0]], r[1]): bytes(r[2]) for r in rows}

    # -- devices -----------------------------------------------------------------------------

    async def enroll(self, public: bytes, name: str, role: str, now: int) -> DeviceRow:
        """First contact puts a device in pending; a known device keeps its state and its
        role (it may give itself a name once; another role: ``role_change``, ``trust.enroll``)."""

        async def tx(con: Conn) -> DeviceRow:
            old = await con.fetchrow(
                f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1 FOR UPDATE", public
            )
            if old is not None:
                enroll_again(_device(old), name, role)  # role_change: refused, logged
            r = await con.fetchrow(
                "INSERT INTO devices(public, node_id, name, role, first_seen, last_seen)"
                " VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (public) DO UPDATE SET"
                " last_seen = EXCLUDED.last_seen,"
                " name = CASE WHEN devices.name = '' THEN EXCLUDED.name ELSE devices.name END"
                f" RETURNING {_DEVICE_COLS}",
                public, identity.fingerprint(public), name, role, now,
            )  # fmt: skip
            assert r is not None
            return _device(r)

        d: DeviceRow = await self._run("enroll", tx)
        return d

    async def device(self, public: bytes) -> DeviceRow | None:
        r = await self.pool.fetchrow(
            f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1", public
        )
        return _device(r) if r is not None else None

    async def find_device(self, node_id: str) -> DeviceRow | None:
        want = node_id.strip()
        r = await self.pool.fetchrow(
            f"SELECT {_DEVICE_COLS} FROM devices WHERE node_id = $1 OR encode(public, 'hex') = $2",
            want.upper(), want.lower(),
        )  # fmt: skip
        return _device(r) if r is not None else None

    async def devices(self) -> list[DeviceRow]:
        rows = await self.pool.fetch(f"SELECT {_DEVICE_COLS} FROM devices ORDER BY first_seen, id")
        return [_device(r) for r in rows]

    async def set_state(
        self, public: bytes, new: str, now: int, endorsement: bytes | None = None
    ) -> DeviceRow:
        """Approve or revoke a device (with the cascades through hubs), and move derived
        state and results for every device whose counted entries changed."""
        if new not in (APPROVED, REVOKED):
            raise ValueError(new)

        async def tx(con: Conn) -> DeviceRow:
            r = await con.fetchrow(
                f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1 FOR UPDATE", public
            )
            if r is None:
                raise KeyError(identity.fingerprint(public))
            d = _device(r)
            if new == APPROVED:
                changed = await self._approve(con, d, now, endorsement)
            else:
                changed = await self._revoke(con, d, now, r["head_seq"])
            await derived.refresh(con, await derived.keys_of_devices(con, changed))
            r = await con.fetchrow(f"SELECT {_DEVICE_COLS} FROM devices WHERE id = $1", d.id)
            assert r is not None
            return _device(r)

        result: DeviceRow = await self._run("set_state", tx)
        return result

    async def _approve(
        self, con: Conn, d: DeviceRow, now: int, endorsement: bytes | None
    ) -> set[int]:
        """Approve ``d`` and, transitively, every pending device an approved hub vouches for.
        Returns the ids of devices whose state changed."""
        await con.execute(
            "UPDATE devices SET state = 'approved', approved_at = $2,"
            " endorsement = COALESCE($3, endorsement), revoked_at = NULL WHERE id = $1",
            d.id, now, endorsement,
        )  # fmt: skip
        changed = {d.id}
        if d.role == "hub":
            for r in await con.fetch(
                f"SELECT {_DEVICE_COLS} FROM devices WHERE state = 'pending' AND public IN"
                " (SELECT device FROM endorsements WHERE hub = $1) ORDER BY public FOR UPDATE",
                d.public,
            ):
                changed |= await self._approve(con, _device(r), now, None)
        return changed

    async def _revoke(self, con: Conn, d: DeviceRow, now: int, head: int) -> set[int]:
        """Revoke ``d`` after its current head and, for a hub, every device approved here only
        through that hub's word."""
        cutoff = head if d.state == APPROVED else 0
        await con.execute(
            "UPDATE devices SET state = 'revoked', revoked_at = $2, revoked_after_seq = $3"
            " WHERE id = $1",
            d.id, now, cutoff,
        )  # fmt: skip
        changed = {d.id}
        if d.role != "hub":
            return changed
        for r in await con.fetch(
            f"SELECT {_DEVICE_COLS} FROM devices o WHERE o.state = 'approved'"
            " AND o.endorsement IS NULL"
            " AND o.public IN (SELECT device FROM endorsements WHERE hub = $1)"
            " AND NOT EXISTS (SELECT 1 FROM endorsements e JOIN devices h ON h.public = e.hub"
            "   WHERE e.device = o.public AND h.state = 'approved' AND h.id <> $2)"
            " ORDER BY public FOR UPDATE",
            d.public, d.id,
        ):  # fmt: skip
            log.warning(
                "revoking %s %s too: it was approved only through hub %s",
                r["role"], r["node_id"], d.node_id,
            )  # fmt: skip
            changed |= await self._revoke(con, _device(r), now, r["head_seq"])
        return changed

    async def _endorse(self, con: Conn, endorsements: Sequence[Endorsement], now: int) -> set[int]:
        """Take endorsements that chain to a hub known here (role hub, not forked); ignore
        the rest (a later stream may bring the missing link). Several passes, so a chain may
        arrive in any order. Returns the ids of devices whose state changed."""
        held = {
            bytes(r[0])
            for r in await con.fetch(
                "SELECT raw FROM endorsements WHERE raw = ANY($1::bytea[])",
                [e.raw for e in endorsements],
            )
        }
        todo = [e for e in endorsements if e.raw not in held]
        changed: set[int] = set()
        progress = True
        while todo and progress:
            progress = False
            rest = []
            for e in todo:
                h = await con.fetchrow(
                    f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1", e.hub
                )
                if h is None or h["role"] != "hub" or h["forked"]:
                    rest.append(e)
                    continue
                await con.execute(
                    "INSERT INTO endorsements(device, hub, raw, received_at) VALUES ($1,$2,$3,$4)"
                    " ON CONFLICT (device, hub) DO UPDATE SET raw = EXCLUDED.raw,"
                    " received_at = EXCLUDED.received_at",
                    e.device, e.hub, e.raw, now,
                )  # fmt: skip
                vouched = h["state"] == APPROVED
                r = await con.fetchrow(
                    "INSERT INTO devices(public, node_id, name, role, state, first_seen,"
                    " last_seen, approved_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)"
                    f" ON CONFLICT (public) DO NOTHING RETURNING {_DEVICE_COLS}",
                    e.device, identity.fingerprint(e.device), e.name, e.role,
                    APPROVED if vouched else PENDING, now, now if vouched else None,
                )  # fmt: skip
                if r is None:  # known: a pending device vouched for by an approved hub
                    r = await con.fetchrow(
                        f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1 FOR UPDATE",
                        e.device,
                    )
                    assert r is not None
                    if vouched and r["state"] == PENDING:
                        changed |= await self._approve(con, _device(r), now, None)
                progress = True
            todo = rest
        return changed

    # -- reads -------------------------------------------------------------------------------

    async def heads(self, publics: Iterable[bytes] | None = None) -> dict[bytes, Head]:
        """Heads of the given origins (all when None): the version vector a sender asks for."""
        if publics is None:
            rows = await self.pool.fetch(
                "SELECT public, head_seq, head_hash FROM devices WHERE head_seq > 0"
            )
        else:
            rows = await self.pool.fetch(
                "SELECT public, head_seq, head_hash FROM devices"
                " WHERE public = ANY($1::bytea[]) AND head_seq > 0",
                list(publics),
            )
        return {bytes(r[0]): _head(r) for r in rows}

    async def record_raw(self, public: bytes, seq: int) -> bytes | None:
        raw = await self.pool.fetchval(
            "SELECT r.raw FROM records r JOIN devices d ON d.id = r.dev"
            " WHERE d.public = $1 AND r.seq = $2",
            public, seq,
        )  # fmt: skip
        return bytes(raw) if raw is not None else None

    async def records_after(self, dev: int, after_seq: int, limit: int) -> list[bytes]:
        """Up to ``limit`` raw records of ``dev``'s log after ``after_seq``, in seq order."""
        rows = await self.pool.fetch(
            "SELECT raw FROM records WHERE dev = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            dev, after_seq, limit,
        )  # fmt: skip
        return [bytes(r[0]) for r in rows]

    async def fork_evidence(self) -> list[tuple[int, int, bytes, bytes | None]]:
        """(dev, seq, evidence raw, held raw) of every fork."""
        rows = await self.pool.fetch("SELECT dev, seq, raw, held_raw FROM forks ORDER BY id")
        return [(r[0], r[1], bytes(r[2]), bytes(r[3]) if r[3] else None) for r in rows]

    async def results(
        self, election: str, level: str = "national", code: str = ""
    ) -> dict[str, Any]:
        async with self.pool.acquire() as con:
            return await derived.results(con, election, level, code)

    async def status_counts(self) -> dict[str, Any]:
        async with self.pool.acquire() as con, con.transaction(isolation="repeatable_read"):
            return await derived.status_counts(con)

    async def conflicts(self, limit: int = 200) -> list[dict[str, Any]]:
        async with self.pool.acquire() as con:
            return await derived.conflicts(con, limit)

    # -- meta --------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> bytes | None:
        v = await self.pool.fetchval("SELECT value FROM meta WHERE key = $1", key)
        return bytes(v) if v is not None else None

    async def set_meta(self, key: str, value: bytes) -> None:
        await self.pool.execute(
            "INSERT INTO meta(key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            key, value,
        )  # fmt: skip
