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
- **Quotas** on devices never approved (``hub.protocol.quota``, the same decisions as the
  SQLite store, ``hub.pg.quotas``): a transaction that may add to what they hold first locks
  the one row of ``quota_lock`` and decides with ``quota.Ledger`` over the usage read after
  it, so such transactions run one after the other across receivers and a limit is never
  passed. Pushes whose origins are all approved (a root's normal traffic) take no such lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol

import asyncpg

from hub.memory import Confirmed, DeviceRow, PushResult
from hub.protocol import identity, ingest, state, trust, worklist
from hub.protocol.enroll import Endorsement
from hub.protocol.errors import ProtocolError
from hub.protocol.ingest import APPROVED, REVOKED, Examined, Head
from hub.protocol.quota import QUOTA, Ledger, Quotas, Usage
from hub.status import DeviceInfo
from hub.storage import Counters, NodeInfo, OriginView, QuotaLog
from hub.transaction import enroll_again

from . import derived
from . import quotas as pg_quotas
from . import status as pg_status
from .scans import PgScanBook
from .schema import Conn, migrate

log = logging.getLogger(__name__)

RETRIES = 5


class _Raced(Exception):
    """A device this transaction planned as new was made by another one meanwhile: run the
    transaction again (it then reads that device under its lock)."""


RETRY_ON = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    _Raced,
)
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


def _away(exc: BaseException) -> PgUnavailable:
    return PgUnavailable(
        f"the database cannot be read now ({type(exc).__name__}: {exc}); try again shortly"
    )


class _Reads:
    """The pool's one-statement calls, outside a write transaction: a database that is away
    (restarting, unreachable) is ``PgUnavailable`` (HTTP 503), not an internal error."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(sql, *args)
        except UNAVAILABLE as exc:
            raise _away(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._pool.fetchrow(sql, *args)
        except UNAVAILABLE as exc:
            raise _away(exc) from exc

    async def fetchval(self, sql: str, *args: Any) -> Any:
        try:
            return await self._pool.fetchval(sql, *args)
        except UNAVAILABLE as exc:
            raise _away(exc) from exc

    async def execute(self, sql: str, *args: Any) -> str:
        try:
            return await self._pool.execute(sql, *args)
        except UNAVAILABLE as exc:
            raise _away(exc) from exc


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

    def __init__(
        self, pool: asyncpg.Pool, *, refuse_unknown: bool = False, quotas: Quotas | None = None
    ):
        self.pool = pool
        self.db = _Reads(pool)  # reads and small writes outside ``_run``
        self.scan_book = PgScanBook(self.db, self._tx)  # the scans named, held (hub.pg.scans)
        self.refuse_unknown = refuse_unknown
        self.quotas = quotas or Quotas()  # on what devices nobody approved make this hub keep
        self._log_quota = QuotaLog(log)
        self.retries = 0  # transactions run again after a serialization failure or deadlock
        self.commits = 0  # pushes committed by this process
        self.changed = asyncio.Event()  # set after this process committed records or states

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        refuse_unknown: bool = False,
        quotas: Quotas | None = None,
        min_size: int = 1,
        max_size: int = 8,
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
        return cls(pool, refuse_unknown=refuse_unknown, quotas=quotas)

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

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[Conn]:
        """A pooled connection for reads; a database away becomes ``PgUnavailable``."""
        try:
            async with self.pool.acquire() as con:
                yield con
        except UNAVAILABLE as exc:
            raise _away(exc) from exc

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
        self.commits += 1
        if result.plan.accepted or result.plan.forks:
            self.changed.set()
        self._log_quota([o for o in result.plan.outcomes if o.code == QUOTA], now)
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
        ex_list = [c.ex for c in checked]
        by_index = {c.ex.index: c for c in checked}
        origins = sorted(
            {ex.record.origin for ex in ex_list if ex.record is not None and ex.error is None}
        )
        ledger = await pg_quotas.ledger_for(
            con, self.quotas, [*origins, *(e.device for e in endorsements)]
        )
        changed: set[int] = set()
        if endorsements:
            changed |= await self._endorse(con, endorsements, now, ledger)
        rows = await con.fetch(
            f"SELECT {_DEVICE_COLS}, records, held_bytes FROM devices"
            " WHERE public = ANY($1::bytea[]) ORDER BY public FOR UPDATE",
            origins,
        )
        devices = {bytes(r["public"]): _device(r) for r in rows}
        heads = {bytes(r["public"]): _head(r) for r in rows if r["head_seq"]}
        if ledger is not None:  # what each of them holds, read under its row lock
            ledger.held = {
                bytes(r["public"]): Usage(r["records"], r["held_bytes"])
                for r in rows
                if r["approved_at"] is None
            }
        policies = {p: d.policy() for p, d in devices.items()}
        existing = await self._existing(con, devices, ingest.needed_existing(ex_list, heads))
        plan = ingest.plan(
            ex_list, heads, existing, policies, refuse_unknown=self.refuse_unknown, ledger=ledger
        )
        new = sorted(plan.new_origins)  # origins kept for the first time: devices now
        if new:
            made = await con.fetch(
                "INSERT INTO devices(public, node_id, first_seen, last_seen)"
                " SELECT p, n, $3, $3 FROM unnest($1::bytea[], $2::text[]) u(p, n)"
                f" ORDER BY p ON CONFLICT (public) DO NOTHING RETURNING {_DEVICE_COLS}",
                new, [identity.fingerprint(o) for o in new], now,
            )  # fmt: skip
            if len(made) != len(new):  # another transaction made one meanwhile
                raise _Raced()
            devices.update((bytes(r["public"]), _device(r)) for r in made)

        cols: list[list[Any]] = [[] for _ in range(14)]
        counted_keys: set[state.Key] = set()
        fresh: dict[state.Key, list[derived.Fact]] = {}
        added: dict[bytes, Usage] = {}
        for ex in plan.accepted:
            rec, c = ex.record, by_index[ex.index]
            ef = c.facts
            assert rec is not None and ef is not None
            d = devices[rec.origin]
            row = (d.id, rec.seq, rec.hash, rec.raw, now, *ef.key, c.flags, ef.users_total_j,
                   ef.numbers, ef.supersedes, ",".join(ef.scans), c.votes)  # fmt: skip
            for i, v in enumerate(row):
                cols[i].append(v)
            added[rec.origin] = added.get(rec.origin, Usage()) + Usage(1, len(rec.raw))
            if rec.seq <= d.forward_limit(rec.seq):
                counted_keys.add(ef.key)
                origin = d.id.to_bytes(8, "big")  # as derived state reads it back
                f = state.EntryFacts(rec.hash, origin, ef.key, ef.numbers, ef.supersedes,
                                     ef.users_total_j, ef.scans)  # fmt: skip
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
            more = [added.get(o, Usage()) for o in touched]
            await con.execute(
                "UPDATE devices d SET head_seq = u.s, head_hash = u.h, records = d.records + u.n,"
                " held_bytes = d.held_bytes + CASE WHEN d.approved_at IS NULL THEN u.b ELSE 0"
                " END, forked = d.forked OR u.f, last_seen = $7"
                " FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bigint[],"
                " $5::bigint[], $6::boolean[]) u(id, s, h, n, b, f) WHERE d.id = u.id",
                [devices[o].id for o in touched], [final[o].seq for o in touched],
                [final[o].hash for o in touched], [m.records for m in more],
                [m.bytes for m in more], [devices[o].id in forked for o in touched], now,
            )  # fmt: skip
        changed |= forked
        if changed:  # a device's counted records changed: derive its keys from the database
            counted_keys |= await derived.keys_of_devices(con, changed)
            fresh = {}
        await derived.refresh(con, counted_keys, fresh)
        out_heads = {o: final[o] for o in touched} if touched else {}
        rows_now = {
            o: dataclasses.replace(devices[o], last_seen=now,
                                   forked=devices[o].forked or devices[o].id in forked)
            for o in touched
        }  # fmt: skip
        return PushResult(plan, out_heads, rows_now, new)

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
            mine = f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1 FOR UPDATE"
            old = await con.fetchrow(mine, public)
            if old is None:  # a new device: within max_pending_devices (QuotaError: 429)
                ledger = await pg_quotas.lock(con, self.quotas)
                old = await con.fetchrow(mine, public)  # made meanwhile?
                if old is None:
                    ledger.check_new_device()
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
        r = await self.db.fetchrow(f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1", public)
        return _device(r) if r is not None else None

    async def find_device(self, node_id: str) -> DeviceRow | None:
        want = node_id.strip()
        r = await self.db.fetchrow(
            f"SELECT {_DEVICE_COLS} FROM devices WHERE node_id = $1 OR encode(public, 'hex') = $2",
            want.upper(), want.lower(),
        )  # fmt: skip
        return _device(r) if r is not None else None

    async def devices(self) -> list[DeviceRow]:
        rows = await self.db.fetch(f"SELECT {_DEVICE_COLS} FROM devices ORDER BY first_seen, id")
        return [_device(r) for r in rows]

    async def approve(self, public: bytes, now: int, endorsement: bytes | None = None) -> DeviceRow:
        """Approve a device (with this node's ``endorsement`` of it) and, transitively, every
        pending device an approved hub vouches for (``trust.approve``)."""

        async def tx(con: Conn) -> DeviceRow:
            devices, ends, _heads = await self._book(con, [public])
            if public not in devices:
                raise KeyError(identity.fingerprint(public))
            for step in trust.approve(public, devices, ends):
                await self._set_approved(con, devices[step.public], now,
                                         endorsement if step.via is None else None)  # fmt: skip
            return await self._after_state_change(con, public, devices)

        d: DeviceRow = await self._run("approve", tx)
        self.changed.set()
        return d

    async def revoke(self, public: bytes, now: int) -> DeviceRow:
        """Revoke a device after its current head and, for a hub, every device approved here
        only through that hub's word (``trust.revoke``)."""

        async def tx(con: Conn) -> DeviceRow:
            devices, ends, heads = await self._book(con, [public])
            if public not in devices:
                raise KeyError(identity.fingerprint(public))
            for step in trust.revoke(public, devices, ends, heads):
                d = devices[step.public]
                await con.execute(
                    "UPDATE devices SET state = 'revoked', revoked_at = $2,"
                    " revoked_after_seq = $3 WHERE id = $1",
                    d.id, now, step.after_seq,
                )  # fmt: skip
                if step.via is not None:
                    log.warning("revoking %s %s too: it was approved only through hub %s",
                                d.role, d.node_id, devices[step.via].node_id)  # fmt: skip
            return await self._after_state_change(con, public, devices)

        d: DeviceRow = await self._run("revoke", tx)
        self.changed.set()
        return d

    async def set_state(
        self, public: bytes, new: str, now: int, endorsement: bytes | None = None
    ) -> DeviceRow:
        """``approve`` or ``revoke`` by the state's name."""
        if new == APPROVED:
            return await self.approve(public, now, endorsement)
        if new == REVOKED:
            return await self.revoke(public, now)
        raise ValueError(new)

    async def _after_state_change(
        self, con: Conn, public: bytes, devices: dict[bytes, DeviceRow]
    ) -> DeviceRow:
        """Move derived state and results for every device of the cascade; the row now."""
        ids = [d.id for d in devices.values()]
        await derived.refresh(con, await derived.keys_of_devices(con, ids))
        r = await con.fetchrow(f"SELECT {_DEVICE_COLS} FROM devices WHERE public = $1", public)
        assert r is not None
        return _device(r)

    @staticmethod
    async def _set_approved(con: Conn, d: DeviceRow, now: int, endorsement: bytes | None) -> None:
        await con.execute(
            "UPDATE devices SET state = 'approved', approved_at = $2,"
            " endorsement = COALESCE($3, endorsement), revoked_at = NULL WHERE id = $1",
            d.id, now, endorsement,
        )  # fmt: skip

    async def _book(
        self, con: Conn, seeds: Iterable[bytes]
    ) -> tuple[dict[bytes, DeviceRow], dict[bytes, dict[bytes, bytes]], dict[bytes, int]]:
        """What ``hub.protocol.trust`` needs to decide a cascade from ``seeds``, read under
        row locks: the devices the seeds vouch for, transitively, every hub vouching for any
        of them, and the endorsements between them. The device rows are locked in key order,
        so two cascades (or a cascade and a push carrying endorsements) over the same devices
        run one after the other. Returns (devices, endorsements, heads)."""
        known: set[bytes] = set(seeds)
        frontier = set(known)
        while frontier:  # down: the devices the hubs found so far vouch for
            rows = await con.fetch(
                "SELECT device FROM endorsements WHERE hub = ANY($1::bytea[])", list(frontier)
            )
            frontier = {bytes(r[0]) for r in rows} - known
            known |= frontier
        ends: dict[bytes, dict[bytes, bytes]] = {}
        for dev, hub, raw in await con.fetch(  # up: every hub vouching for one of them
            "SELECT device, hub, raw FROM endorsements WHERE device = ANY($1::bytea[])",
            list(known),
        ):
            ends.setdefault(bytes(dev), {})[bytes(hub)] = bytes(raw)
        wanted = known | {h for by in ends.values() for h in by}
        rows = await con.fetch(
            f"SELECT {_DEVICE_COLS} FROM devices WHERE public = ANY($1::bytea[])"
            " ORDER BY public FOR UPDATE",
            list(wanted),
        )
        devices = {bytes(r["public"]): _device(r) for r in rows}
        heads = {bytes(r["public"]): int(r["head_seq"]) for r in rows}
        return devices, ends, heads

    async def _endorse(
        self, con: Conn, endorsements: Sequence[Endorsement], now: int, ledger: Ledger | None
    ) -> set[int]:
        """Take the endorsements that chain to a hub known here (``trust.accept_endorsements``,
        within the pending quota when there is a ``ledger``). Returns the ids of devices whose
        state changed."""
        devices, ends, _heads = await self._book(
            con, {p for e in endorsements for p in (e.hub, e.device)}
        )
        changed: set[int] = set()
        for step in trust.accept_endorsements(endorsements, devices, ends, ledger):
            if isinstance(step, trust.Keep):
                e = step.endorsement
                await con.execute(
                    "INSERT INTO endorsements(device, hub, raw, received_at) VALUES ($1,$2,$3,$4)"
                    " ON CONFLICT (device, hub) DO UPDATE SET raw = EXCLUDED.raw,"
                    " received_at = EXCLUDED.received_at",
                    e.device, e.hub, e.raw, now,
                )  # fmt: skip
            elif isinstance(step, trust.Admit):
                e = step.endorsement
                r = await con.fetchrow(
                    "INSERT INTO devices(public, node_id, name, role, state, first_seen,"
                    " last_seen, approved_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)"
                    f" ON CONFLICT (public) DO NOTHING RETURNING {_DEVICE_COLS}",
                    e.device, identity.fingerprint(e.device), e.name, e.role, step.state, now,
                    now if step.state == APPROVED else None,
                )  # fmt: skip
                if r is not None:
                    devices[e.device] = _device(r)
            else:
                d = devices[step.public]
                await self._set_approved(con, d, now, None)
                changed.add(d.id)
        return changed

    # -- reads -------------------------------------------------------------------------------

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
        return {bytes(r[0]): _head(r) for r in rows}

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
        async with self._read() as con:
            return await derived.results(con, election, level, code)

    async def status_counts(self) -> dict[str, Any]:
        async with self._read() as con, con.transaction(isolation="repeatable_read"):
            return await derived.status_counts(con)

    async def conflicts(self, limit: int = 200) -> list[dict[str, Any]]:
        async with self._read() as con:
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
            f"SELECT {_DEVICE_COLS}, u.seq AS up_seq, u.hash AS up_hash, u.receipt, u.at"
            " FROM devices LEFT JOIN upstream u ON u.dev = devices.id WHERE public = $1",
            public,
        )
        if r is None:
            return OriginView(None, Head(), None)
        c = None
        if r["up_seq"] is not None:
            c = Confirmed(r["up_seq"], bytes(r["up_hash"]), bytes(r["receipt"]), r["at"])
        return OriginView(_device(r), _head(r), c)

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
        async with self._read() as con, con.transaction(isolation="repeatable_read"):
            return await pg_status.build(con, node, now)

    async def device_list(self, hub_public: bytes) -> list[DeviceInfo]:
        async with self._read() as con:
            return await pg_status.device_list(con, hub_public)

    async def device_page(
        self, hub_public: bytes, after: tuple[int, str] | None, limit: int
    ) -> list[DeviceInfo]:
        async with self._read() as con:
            return await pg_status.device_list(con, hub_public, after=after, limit=limit)

    async def device_info(self, d: DeviceRow, hub_public: bytes) -> DeviceInfo:
        async with self._read() as con:
            (info,) = await pg_status.device_list(con, hub_public, d.public)
            return info

    async def counters(self) -> Counters:
        async with self._read() as con:
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
