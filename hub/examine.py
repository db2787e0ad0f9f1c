"""Checking pushed records off the event loop: decode, verify the origin's signature, check
the schema, compute the flags, and derive what the store keeps per record (STYLE 1: the checks
themselves are ``hub.protocol.ingest.examine`` and ``hub.protocol.rules.check``).

The checks hold the GIL for their Python part, so they run in two worker *processes* by default
(``make_pool``), each with its own copy of the polling-station master (``init_worker``); a
worker sends back small tuples, not objects (pickling full records costs more than checking
them). Small batches are checked inline: shipping them costs more than it saves.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.protocol import entry, ingest, record, rules, state
from hub.protocol.errors import ProtocolError
from hub.protocol.ingest import Examined
from hub.shared.master import load_master


@dataclass(slots=True)
class Checked:
    """A record after the worker checks, with what the store derives from its body."""

    ex: Examined  # body dropped once the values below are derived
    flags: str = ""
    votes: str = ""
    facts: state.EntryFacts | None = None


def votes_of(body: dict[str, Any]) -> str:
    if "suara" in body:
        items = body["suara"].items()
    else:
        items = ((k, p["jumlah"]) for k, p in body["partai"].items())
    return ",".join(f"{k}:{v}" for k, v in items)


def examine(index: int, raw: bytes, master: rules.TpsMaster | None) -> Checked:
    """CPU-heavy checks for one record, run off the event loop: decode, verify, schema, flags,
    and everything the writer needs from the body (the body itself is dropped, so the result
    is small to hand back from a worker process)."""
    ex = ingest.examine(index, raw)
    if ex.body is None or ex.record is None:
        return Checked(ex)
    body = ex.body
    flags = ",".join(rules.rule_ids(rules.check(body, master)))
    return Checked(
        ingest.Examined(index, ex.record, None, None), flags, votes_of(body), facts_of(ex)
    )


EXAMINE_CHUNK = 256
_worker_master: rules.TpsMaster | None = None


WORKER_NICE = 5  # the event loop answers first; bulk checks take the CPU it leaves


def init_worker(wilayah: str | None) -> None:
    """Initializer of the examine worker processes: die with the forkserver, which dies with
    the hub (``hub.deathsig``); run at a lower priority than the hub's event loop, so that
    checking a big push never slows the answers to other requests; load the master once per
    process."""
    global _worker_master

    from hub.deathsig import follow_parent

    follow_parent()
    os.nice(WORKER_NICE)
    _worker_master = load_master(wilayah) if wilayah else None


def make_pool(wilayah: Path | None, kind: str = "processes", workers: int = 2) -> Executor:
    """The executor that examines pushed records: worker *processes* by default (the Python
    part of the checks holds the GIL, so threads would serialise it), each with its own copy of
    the master; ``kind="threads"`` for measuring the difference."""
    if kind == "threads":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="c1hub-examine")
    ctx = multiprocessing.get_context("forkserver")
    # The forkserver follows this process (hub.deathsig reads the variable at import).
    os.environ["C1HUB_PARENT_PID"] = str(os.getpid())
    ctx.set_forkserver_preload(["hub.deathsig"])
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=init_worker,
        initargs=(str(wilayah) if wilayah else None,),
    )


async def warm_pool(pool: Executor, workers: int = 2) -> None:
    """Start the pool's worker processes now (they import the checker and load the master),
    so the first big push does not pay for it."""
    if isinstance(pool, ProcessPoolExecutor):
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(pool, examine_chunk, ()) for _ in range(workers))
        )


# What a worker process sends back per record: small tuples of derived values, not objects
# (pickling full records costs more than checking them). The parent still holds the raw bytes.
Wire = tuple[Any, ...]


def examine_chunk(chunk: Sequence[bytes]) -> list[Wire]:
    """``examine`` a slice of a batch inside a worker process (master from ``init_worker``)."""
    out: list[Wire] = []
    for raw in chunk:
        c = examine(0, raw, _worker_master)
        if c.ex.error is not None:
            out.append(("error", type(c.ex.error), c.ex.error.message, c.ex.error.code))
        else:
            f = c.facts
            assert f is not None
            out.append(("ok", c.flags, c.votes, f.key, f.numbers, f.supersedes, f.users_total_j,
                        f.scans))  # fmt: skip
    return out


def _from_wire(index: int, raw: bytes, w: Wire) -> Checked:
    """Rebuild a worker's verdict around the raw bytes the parent holds."""
    try:
        rec: record.Record | None = record.decode(raw)
    except ProtocolError as exc:  # the worker saw the same: bytes are not a record
        return Checked(ingest.Examined(index, None, None, exc))
    assert rec is not None
    if w[0] == "error":
        err: ProtocolError = w[1](w[2], code=w[3])
        return Checked(ingest.Examined(index, rec, None, err))
    _, flags, votes, key, numbers, sup, users_j, scans = w
    facts = state.EntryFacts(rec.hash, rec.origin, key, numbers, sup, users_j, scans)
    return Checked(ingest.Examined(index, rec, None, None), flags, votes, facts)


async def examine_batch(
    pool: Executor | None, raws: Sequence[bytes], master: rules.TpsMaster | None
) -> list[Checked]:
    """``examine`` every record of a batch on the pool's workers, in two halves so both cores
    work. A process pool uses its workers' own master (``init_worker``); a thread pool or no
    pool uses ``master``. Small batches run inline: shipping them costs more than it saves."""
    if pool is None or len(raws) <= EXAMINE_CHUNK // 4:
        return [examine(i, raw, master) for i, raw in enumerate(raws)]
    loop = asyncio.get_running_loop()
    n = max(EXAMINE_CHUNK, (len(raws) + 1) // 2)
    if isinstance(pool, ProcessPoolExecutor):
        starts = range(0, len(raws), n)
        wires = await asyncio.gather(
            *(loop.run_in_executor(pool, examine_chunk, raws[i : i + n]) for i in starts)
        )
        # Rebuilding the records around their bytes is a decode per record: a worker thread
        # does it, so a full batch never holds the event loop.
        return await asyncio.to_thread(
            lambda: [
                _from_wire(i + j, raws[i + j], w)
                for i, part in zip(starts, wires, strict=True)
                for j, w in enumerate(part)
            ]
        )
    else:

        def work(start: int, chunk: Sequence[bytes]) -> list[Checked]:
            return [examine(start + i, raw, master) for i, raw in enumerate(chunk)]

        parts = [
            loop.run_in_executor(pool, work, i, raws[i : i + n]) for i in range(0, len(raws), n)
        ]
    out: list[Checked] = []
    for part in await asyncio.gather(*parts):
        out.extend(part)
    return out


def facts_of(ex: Examined) -> state.EntryFacts:
    assert ex.record is not None and ex.body is not None
    body = ex.body
    sup = body.get("supersedes")
    return state.EntryFacts(
        hash=ex.record.hash,
        origin=ex.record.origin,
        key=entry.key(body),
        numbers=hashlib.sha256(entry.numbers(body)).digest()[:16],  # compact, equal iff agree
        supersedes=bytes.fromhex(sup) if sup else None,
        users_total_j=body["pengguna_total"]["j"],
        scans=tuple(body["scans"]),
    )
