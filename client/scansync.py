"""A laptop's scans to its hub, after the entries of a sync round (docs/protocol.md "Scans").

The decisions (what to ask, which chunk next, where to resume) are
``hub.protocol.blobsync.BlobSender``'s; this module reads the chunks from the laptop's blob
store (``DATA/blobs``), makes the calls through ``client.hublink.HubLink``, and keeps what the
hub answered in ``client.scanstate``. Only scans of entries the hub holds are offered, dealt to
eight senders working at once. A call that gets no answer ends that sender's part of the round
(what was learnt is kept); the next round asks the hub where to go on, so at most one chunk
per sender is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from hub.protocol import blobsync as bs
from hub.protocol import clock
from hub.shared.blobs import PARTIAL_MAX_AGE, BlobStore

from . import scanstate
from .errors import SyncError
from .hublink import HubLink
from .scans import blob_store
from .store import ClientStore

log = logging.getLogger(__name__)

LANES = 8  # senders at once, one request in flight each: the hub hashes and fsyncs 8 at once
_REFUSALS = ("offset_mismatch", "not_named", *bs.FATAL)
_STATE = {bs.HELD: scanstate.AT_HUB, bs.UPSTREAM: scanstate.UPSTREAM}


@dataclass(slots=True)
class ScanReport:
    """What the scans part of a round did (``c1client sync --json`` ``scans``)."""

    sent: int = 0  # scans the hub stored this round
    bytes: int = 0  # chunk bytes sent
    resent_bytes: int = 0  # of those, bytes the hub already had (after an interruption)
    refused: list[dict[str, str]] = field(default_factory=list)  # scans the hub refused
    error: str | None = None  # why the round's scans stopped early
    seconds: float = 0.0  # how long the scans part of the round took (wall clock)

    def to_dict(self) -> dict[str, object]:
        return {"sent": self.sent, "bytes": self.bytes, "resent_bytes": self.resent_bytes,
                "refused": self.refused, "error": self.error,
                "seconds": round(self.seconds, 3)}  # fmt: skip


async def send_scans(
    store: ClientStore,
    link: HubLink,
    *,
    chunk: int = bs.CHUNK,
    blobs: BlobStore | None = None,
    lanes: int = LANES,
    partial_max_age: float = PARTIAL_MAX_AGE,
) -> ScanReport:
    """Send the hub the scans it lacks of the entries it holds; returns what happened. The
    scans are dealt round-robin to ``lanes`` senders working at once (one request in flight
    each), so reading and sending here overlap with writing and fsyncing at the hub."""
    began = clock.monotonic()
    blobs = blobs or blob_store(store.data_dir)
    await asyncio.to_thread(blobs.expire_tmp, partial_max_age)  # half-copied pages of a crash
    await scanstate.index(store.db)
    upto = (await store.marks()).local_after
    rows = await scanstate.to_send(store.db, upto)
    sizes = await asyncio.to_thread(_sizes, blobs, [h for h, _ in rows])
    offered = [(h, sizes[h]) for h, _ in rows if h in sizes]
    report = ScanReport()
    learnt: dict[str, str] = {}
    senders = [bs.BlobSender(chunk=chunk) for _ in range(max(1, lanes))]
    for i, sender in enumerate(senders):
        sender.offer(offered[i :: len(senders)])
    try:
        await asyncio.gather(*(_lane(s, link, blobs, report, learnt) for s in senders))
    finally:
        report.resent_bytes = sum(s.resent_bytes for s in senders)
        await scanstate.set_states(store.db, learnt)
        report.seconds = clock.monotonic() - began
    return report


async def _lane(
    sender: bs.BlobSender,
    link: HubLink,
    blobs: BlobStore,
    report: ScanReport,
    learnt: dict[str, str],
) -> None:
    """One sender's requests, one at a time, until it has nothing to do or gets no answer."""
    while (step := sender.next_step(clock.monotonic())) is not None:
        try:
            if isinstance(step, bs.Ask):
                reply = await link.blobs_lacking(list(step.hashes))
                sender.lacking_answered(reply, clock.monotonic())
                hashes = step.hashes
            else:
                data = await asyncio.to_thread(blobs.read, step.hash, step.offset, step.length)
                reply = await link.blob_put(step.hash, step.offset, data, step.total)
                sender.chunk_answered(reply)
                report.bytes += len(data)
                hashes = (step.hash,)
                if sender.state.get(step.hash) == bs.HELD:
                    report.sent += 1
        except SyncError as exc:
            code = exc.code if exc.code in _REFUSALS else ""
            sender.failed(code, exc.message, clock.monotonic(), retry_after=exc.retry_after)
            if isinstance(step, bs.Send) and code in bs.FATAL:
                log.error("hub refused scan %s: %s", step.hash, exc.message)
                report.refused.append({"hash": step.hash, "code": code,
                                       "reason": exc.message})  # fmt: skip
            if not code:  # no answer: the next round asks where to go on
                report.error = exc.message
                return
            continue
        for h in hashes:
            st = _STATE.get(sender.state.get(h, ""))
            if st is not None:
                learnt[h] = st


def _sizes(blobs: BlobStore, hashes: list[str]) -> dict[str, int]:
    """Sizes of the scans held here (a scan named by an entry but not on this laptop is not
    offered)."""
    out = {}
    for h in hashes:
        try:
            out[h] = blobs.path(h).stat().st_size
        except OSError:
            continue
    return out
