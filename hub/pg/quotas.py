"""The quotas on devices never approved (``hub.protocol.quota``) in the PostgreSQL store.

What a device never approved holds is in its row: ``records`` and ``held_bytes`` (migration
4), moved by the push transaction. The total held and the pending count are sums over the
devices never approved (the partial index ``devices_never_approved``: a few thousand rows at
most, whatever the number of entries).

A transaction that may add to them (a push with a record or an endorsement of a device that is
unknown or never approved, an enrollment of a new key) calls ``lock`` first: it locks the one
row of ``quota_lock`` until COMMIT and reads the usage after it, at READ COMMITTED, so it sees
every earlier such transaction's commit. Such transactions therefore decide one after the
other across all receivers, and a limit is never passed. Approving and revoking only lower the
usage and take no lock (a decision that read the higher figure was only stricter).
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.protocol.quota import Ledger, Quotas, Usage

from .schema import Conn


async def held(con: Conn) -> tuple[int, Usage]:
    """(devices pending, records and bytes held by devices never approved), as committed."""
    r = await con.fetchrow(
        "SELECT count(*) FILTER (WHERE state = 'pending'), coalesce(sum(records), 0),"
        " coalesce(sum(held_bytes), 0) FROM devices WHERE approved_at IS NULL"
    )
    assert r is not None
    return int(r[0]), Usage(int(r[1]), int(r[2]))


async def lock(con: Conn, quotas: Quotas) -> Ledger:
    """Lock ``quota_lock`` (until COMMIT) and return the ledger over the usage read after it
    (each device's own share is for the caller to fill in, read under its row lock)."""
    await con.execute("SELECT one FROM quota_lock FOR UPDATE")
    pending, total = await held(con)
    return Ledger(quotas, {}, total, pending)


async def ledger_for(con: Conn, quotas: Quotas, publics: Sequence[bytes]) -> Ledger | None:
    """``lock`` if one of ``publics`` is unknown or was never approved; None when all are
    approved (nothing to decide, no lock). Approval is for good: a key seen approved by this
    read, before any lock, stays approved."""
    want = sorted(set(publics))
    if not want:
        return None
    approved = await con.fetchval(
        "SELECT count(*) FROM devices WHERE public = ANY($1::bytea[]) AND approved_at IS NOT NULL",
        want,
    )
    return None if approved == len(want) else await lock(con, quotas)
