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
- **Where it is:** ``hub.pg.pool`` (the pool: one-statement calls, transactions, retries,
  ``PgUnavailable``), ``hub.pg.ingest`` (the push transaction), ``hub.pg.enrollment``
  (enroll and the trust cascades), ``hub.pg.reads`` (``PgReads``, the read side this class
  extends), ``hub.pg.rows`` (device rows, heads), ``hub.pg.schema`` (the migrations).
- **Quotas** on devices never approved (``hub.protocol.quota``, the same decisions as the
  SQLite store, ``hub.pg.quotas``): a transaction that may add to what they hold first locks
  the one row of ``quota_lock`` and decides with ``quota.Ledger`` over the usage read after
  it, so such transactions run one after the other across receivers and a limit is never
  passed. Pushes whose origins are all approved (a root's normal traffic) take no such lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from hub.memory import DeviceRow, PushResult
from hub.protocol import identity
from hub.protocol.enroll import Endorsement
from hub.protocol.ingest import APPROVED, REVOKED
from hub.protocol.quota import QUOTA, Quotas
from hub.storage import QuotaLog

from . import enrollment, ingest
from .pool import UNAVAILABLE, Db, PgUnavailable
from .reads import PgReads
from .rows import CheckedLike
from .scans import PgScanBook
from .schema import migrate

__all__ = ["PgStore", "PgUnavailable"]

log = logging.getLogger(__name__)


class PgStore(PgReads):
    """The PostgreSQL store of one root (or big provincial hub), shared by its receivers."""

    def __init__(
        self, pool: asyncpg.Pool, *, refuse_unknown: bool = False, quotas: Quotas | None = None
    ):
        self.pool = pool
        self.db = Db(pool)  # reads, small writes and the transactions (``db.run``)
        self.scan_book = PgScanBook(self.db, self.db.tx)  # the scans named, held (hub.pg.scans)
        self.refuse_unknown = refuse_unknown
        self.quotas = quotas or Quotas()  # on what devices nobody approved make this hub keep
        self._log_quota = QuotaLog(log)
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

    @property
    def retries(self) -> int:
        """Transactions run again after a serialization failure or deadlock."""
        return self.db.retries

    # -- records -----------------------------------------------------------------------------

    async def push(
        self, checked: Sequence[CheckedLike], now: int, endorsements: Sequence[Endorsement] = ()
    ) -> PushResult:
        """Store a checked batch; returns once it is committed (or raises, storing nothing)."""
        result: PushResult = await self.db.run(
            "push", ingest.push, checked, now, endorsements, self.quotas, self.refuse_unknown
        )
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

    # -- devices (hub.pg.enrollment) ---------------------------------------------------------

    async def enroll(self, public: bytes, name: str, role: str, now: int) -> DeviceRow:
        """First contact puts a device in pending; a known device keeps its state and its
        role (it may give itself a name once; another role: ``role_change``, ``trust.enroll``)."""
        d: DeviceRow = await self.db.run(
            "enroll", enrollment.enroll, public, name, role, now, self.quotas
        )
        return d

    async def approve(self, public: bytes, now: int, endorsement: bytes | None = None) -> DeviceRow:
        """Approve a device (with this node's ``endorsement`` of it) and, transitively, every
        pending device an approved hub vouches for (``trust.approve``)."""
        d: DeviceRow = await self.db.run("approve", enrollment.approve, public, now, endorsement)
        self.changed.set()
        return d

    async def revoke(self, public: bytes, now: int) -> DeviceRow:
        """Revoke a device after its current head and, for a hub, every device approved here
        only through that hub's word (``trust.revoke``)."""
        d: DeviceRow = await self.db.run("revoke", enrollment.revoke, public, now)
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
