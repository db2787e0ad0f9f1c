"""A receiver process for the crash tests: pushes one laptop's log into a PgStore in batches
and prints ``RECEIPT <head>`` after each push returns (after its COMMIT), as a receiver
answering a hub would.

    python -m tests.pg.receiver DSN SEED COUNT BATCH
"""

from __future__ import annotations

import asyncio
import sys

from hub.pg.store import PgStore
from tests.pg.helpers import check, forms, ident, sign


async def main(dsn: str, seed: int, count: int, batch: int) -> None:
    store = await PgStore.open(dsn, max_size=2)
    try:
        who = ident(seed)
        await store.enroll(who.public, "crash", "laptop", 1)
        await store.set_state(who.public, "approved", 2)
        raws = sign(who, forms(count, seed=seed))
        for i in range(0, count, batch):
            r = await store.push(check(raws[i : i + batch]), 3)
            print("RECEIPT", r.heads[who.public].seq, flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
