"""Receivers and the database failing mid-push, on real processes and a real PostgreSQL:
nothing receipted is lost, nothing is stored twice, and a receiver recovers by itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hub.pg.store import PgStore, PgUnavailable
from tests.pg.helpers import check, forms, ident, sign
from tests.servers.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
COUNT, BATCH = 600, 20


def receiver(dsn: str, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.pg.receiver", dsn, str(seed), str(COUNT), str(BATCH)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def receipts_until(proc: subprocess.Popen[str], n: int) -> list[int]:
    assert proc.stdout is not None
    got = []
    while len(got) < n:
        line = proc.stdout.readline()
        assert line, "the receiver ended before giving its receipts"
        got.append(int(line.split()[1]))
    return got


async def log_state(dsn: str, seed: int) -> tuple[int, list[int]]:
    store = await PgStore.open(dsn)
    try:
        head = (await store.heads([ident(seed).public])).get(ident(seed).public)
        seqs = [
            r[0]
            for r in await store.pool.fetch(
                "SELECT r.seq FROM records r JOIN devices d ON d.id = r.dev"
                " WHERE d.public = $1 ORDER BY r.seq",
                ident(seed).public,
            )
        ]
        return (head.seq if head else 0), seqs
    finally:
        await store.close()


@pytest.mark.slow
async def test_kill9_of_a_receiver_mid_push_loses_nothing_receipted(pg_dsn: str) -> None:
    """Two receivers take the same laptop's log at once (two redundant hubs); one is killed
    with SIGKILL in the middle: the other goes on, every receipt given is kept, each record
    is stored once; a replay through a new receiver finds the rest duplicate."""
    a, b = receiver(pg_dsn, 5), receiver(pg_dsn, 5)
    try:
        given = receipts_until(a, 3)
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        assert b.wait(timeout=120) == 0
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
    head, seqs = await log_state(pg_dsn, 5)
    assert head == COUNT and seqs == list(range(1, COUNT + 1))
    assert max(given) <= head
    c = receiver(pg_dsn, 5)
    try:
        assert c.wait(timeout=120) == 0
    finally:
        if c.stdout is not None:
            c.stdout.close()
    assert (await log_state(pg_dsn, 5))[1] == list(range(1, COUNT + 1))


@pytest.mark.slow
async def test_kill9_of_the_only_receiver_keeps_every_receipt(pg_dsn: str) -> None:
    a = receiver(pg_dsn, 6)
    try:
        given = receipts_until(a, 4)
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
    finally:
        if a.stdout is not None:
            a.stdout.close()
    head, seqs = await log_state(pg_dsn, 6)
    assert head >= max(given)  # a commit may have landed after the last line read
    assert seqs == list(range(1, head + 1))


@pytest.mark.slow
async def test_database_restart_mid_push_receipts_only_what_committed(
    postgres_server: PostgresServer, pg_dsn: str
) -> None:
    """PostgreSQL is killed (immediate shutdown: crash recovery from WAL at start) while two
    laptops push: pushes that fail give no receipt and are sent again, the same store (same
    pool) recovers without a restart, and every receipted record is there exactly once."""
    store = await PgStore.open(pg_dsn, max_size=4)
    laptops = [ident(70), ident(71)]
    receipted: dict[bytes, int] = {}
    failures = 0
    try:
        for who in laptops:
            await store.enroll(who.public, "x", "laptop", 1)
            await store.set_state(who.public, "approved", 2)
        logs = {w.public: sign(w, forms(COUNT // 2, seed=70 + i)) for i, w in enumerate(laptops)}

        async def pusher(public: bytes, raws: list[bytes]) -> None:
            nonlocal failures
            i = 0
            while i < len(raws):
                try:
                    r = await store.push(check(raws[i : i + BATCH]), 3)
                except PgUnavailable:
                    failures += 1
                    await asyncio.sleep(0.2)  # a sender's backoff; then the same batch again
                    continue
                receipted[public] = r.heads[public].seq
                i = r.heads[public].seq

        tasks = [asyncio.ensure_future(pusher(p, raws)) for p, raws in logs.items()]
        while sum(receipted.values()) < COUNT // 4:
            await asyncio.sleep(0.01)
        before = dict(receipted)
        restart = threading.Thread(target=postgres_server.restart, args=("immediate",))
        restart.start()
        while restart.is_alive():
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        assert failures > 0, "the restart did not interrupt any push"
        for public, raws in logs.items():
            rows = await store.pool.fetch(
                "SELECT r.seq, r.raw FROM records r JOIN devices d ON d.id = r.dev"
                " WHERE d.public = $1 ORDER BY r.seq",
                public,
            )
            assert [bytes(r[1]) for r in rows] == raws
            assert before[public] <= receipted[public] == len(raws)
        counts = await store.status_counts()
        assert counts["entries"]["accepted"] == COUNT
        assert counts["tps"]["single"] == COUNT
    finally:
        await store.close()
