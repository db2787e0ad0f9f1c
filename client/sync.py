"""Pushing a laptop's log to its hub (DESIGN §2.1, §2.4, §2.6).

One round (``sync_once``): find the hub (``--hub`` URL, else mDNS, else the last address that
worked), asking every candidate address for its hello at the same time, each within
``hello_timeout`` (a candidate that does not answer costs the round at most that long, and is
reported in the round's ``errors``), check its identity against the pinned key (pinning it at
first enrollment), enroll
(idempotent), ask which seq the hub holds for this laptop, push the rest in seq order in
batches, and keep each signed receipt after checking it: signed by the pinned hub, naming a seq
and hash that match this laptop's own record. Entries up to a receipt's seq are "at hub".

``sync_forever`` repeats rounds as entries are added and as the hub comes and goes, with capped
exponential backoff and full jitter between failures, never sooner than a busy hub's
Retry-After. A push the hub finds too big (413) is sent again in halves.

The decisions (which hubs, what the hub's head means, which receipts to keep, what a push reply
means) are ``hub.protocol.sender``'s; the calls are ``client.hublink``'s. This module does the
rounds: it reads the store, calls the hub, and words each verdict for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from client.config import setting
from client.errors import ClientError, SyncError, TooBigError
from client.hublink import HubLink
from client.scansync import ScanReport, send_scans
from client.store import ClientStore, HubInfo
from hub.protocol import clock, enroll, receipt, sender
from hub.protocol.errors import ProtocolError, SignatureError
from hub.protocol.pacing import Backoff
from hub.shared import rpc
from hub.shared.rpc import Hello

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500
CALL_TIMEOUT = rpc.CALL_TIMEOUT
BACKOFF_BASE = 0.5
BACKOFF_CAP = 15.0  # one hub on the room's LAN: come back quickly after it restarts
HELLO_TIMEOUT: float = setting("hello_timeout").default
PARTIAL_MAX_AGE: float = setting("partial_max_age").default

Failed = tuple[str, SyncError]  # a hub candidate's address, and why it was not synced


@dataclass(slots=True)
class SyncReport:
    hub_id: str = ""
    hub_url: str = ""
    state: str = ""  # this laptop's enrollment state at the hub
    code: str = ""  # comparison code
    pushed: int = 0
    accepted: int = 0
    duplicate: int = 0
    at_hub: int = 0
    confirmed_upstream: int = 0
    local_only: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    refused_hubs: list[str] = field(default_factory=list)
    hubs: list[dict[str, Any]] = field(default_factory=list)  # one per hub synced
    errors: list[dict[str, str]] = field(default_factory=list)  # hubs that failed this round
    found_by: dict[str, str] = field(default_factory=dict)  # url -> "address"|"mdns"|"cached"
    scans: ScanReport = field(default_factory=ScanReport)  # scans sent after the entries

    def failed(self, url: str, err: SyncError) -> None:
        """Note a hub (or a candidate address) that failed this round while another worked."""
        self.errors.append({"url": url, **err.to_dict()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "hub": {"id": self.hub_id or None, "url": self.hub_url or None},
            "state": self.state,
            "code": self.code,
            "pushed": self.pushed,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "at_hub": self.at_hub,
            "confirmed_upstream": self.confirmed_upstream,
            "local_only": self.local_only,
            "rejected": self.rejected,
            "refused_hubs": self.refused_hubs,
            "hubs": self.hubs,
            "errors": self.errors,
            "scans": self.scans.to_dict(),
        }


async def _candidates(
    store: ClientStore,
    hub_urls: Sequence[str],
    mdns_interfaces: list[str] | None,
    timeout: float,
    found_by: dict[str, str] | None = None,
) -> list[str]:
    how = found_by if found_by is not None else {}
    if hub_urls:
        how.update(dict.fromkeys(hub_urls, "address"))
        return list(hub_urls)
    pins = await store.pinned_hubs()
    keys = {p.public for p in pins}
    urls: list[str] = []
    try:
        from client.discovery import browse

        found = await browse(
            interfaces=mdns_interfaces,
            timeout=timeout,
            want_public=pins[0].public if len(pins) == 1 else None,
        )
        # Pinned hubs first; others too, so that an impostor is refused out loud, not ignored.
        found.sort(key=lambda f: f.public not in keys)
        urls.extend(f.url for f in found)
        how.update(dict.fromkeys(urls, "mdns"))
    except Exception as exc:  # discovery is only a hint
        log.warning("mDNS discovery failed (%s); trying the last address that worked", exc)
    urls.extend(p.url for p in pins if p.url and p.url not in urls)
    how.update({u: "cached" for u in urls if u not in how})
    return urls


async def find_hubs(
    store: ClientStore,
    session: aiohttp.ClientSession,
    *,
    hub_urls: Sequence[str] = (),
    mdns_interfaces: list[str] | None = None,
    add: bool = False,
    timeout: float = 3.0,
    hello_timeout: float = HELLO_TIMEOUT,
    report: SyncReport | None = None,
) -> list[tuple[HubLink, Hello]]:
    """The hubs to sync with: reachable, and each either pinned, or the first hub ever (pinned
    at first enrollment), or — with ``add`` — a second hub of the same room
    (``sender.HubChoice``).

    Every candidate is asked for its hello at once, each with ``hello_timeout`` seconds to
    answer; the answers are weighed in the candidates' order (pinned and given addresses
    first). When a hub is found, the candidates whose hello failed go into ``report.errors``
    (those that answered with another key are in ``report.refused_hubs``); when none is,
    SyncError."""
    pins = {p.public: p for p in await store.pinned_hubs()}
    urls = await _candidates(
        store, hub_urls, mdns_interfaces, timeout, report.found_by if report else None
    )
    if not urls:
        raise SyncError(
            "no hub found: mDNS found nothing (hotel Wi-Fi often blocks it) and no address "
            "worked before. Ask the coordinator for the hub's address and run: "
            "c1client sync --hub http://ADDRESS:8470",
            "hub tidak ditemukan: mDNS tidak menemukan apa pun (Wi-Fi hotel sering "
            "memblokirnya) dan belum ada alamat yang pernah berhasil. Minta alamat hub ke "
            "koordinator lalu jalankan: c1client sync --hub http://ALAMAT:8470",
            code="no_hub",
        )
    links = [HubLink(session, url) for url in urls]
    asks = [
        asyncio.create_task(link.hello(hello_timeout), name=f"c1client-hello {link.url}")
        for link in links
    ]
    try:
        found, failed, refused = await _choose(
            links, asks, sender.HubChoice(pins, add=add), pins, report
        )
    finally:
        for ask in asks:  # after the first enrollment's choice: the others are not needed
            ask.cancel()
        await asyncio.gather(*asks, return_exceptions=True)
    errors = [err for _url, err in failed + refused]
    if not found:
        if len(errors) == 1:
            raise errors[0]
        waits = [e.retry_after for e in errors if e.retry_after is not None]
        raise SyncError(
            "; ".join(e.message for e in errors),
            "; ".join(e.pesan for e in errors),
            code=errors[0].code if errors else "no_hub",
            retry_after=max(waits) if waits else None,
        )
    if report is not None:
        for url, err in failed:
            log.warning("hub candidate %s failed: %s", url, err)
            report.failed(url, err)
    return found


async def _choose(
    links: list[HubLink],
    asks: list[asyncio.Task[Hello]],
    choice: sender.HubChoice,
    pins: dict[bytes, HubInfo],
    report: SyncReport | None,
) -> tuple[list[tuple[HubLink, Hello]], list[Failed], list[Failed]]:
    """Weigh the candidates' hellos in their order: the hubs chosen, the candidates whose
    hello failed (no answer, no connection, not a hub, an impostor), and the hubs refused for
    their key (listed in ``report.refused_hubs``)."""
    found: list[tuple[HubLink, Hello]] = []
    failed: list[Failed] = []
    refused: list[Failed] = []
    for link, ask in zip(links, asks, strict=True):
        url = link.url
        try:
            hello = await ask
        except SyncError as exc:
            failed.append((url, exc))
            continue
        verdict = choice.offer(hello.public)
        if verdict == sender.SEEN:
            continue
        if verdict == sender.REFUSE:
            enrolled = ", ".join(p.node_id for p in pins.values())
            other = hello.node_id
            log.warning("refused hub at %s: identity %s is not the pinned %s", url, other, enrolled)
            if report is not None:
                report.refused_hubs.append(url)
            err = SyncError(
                f"REFUSED hub at {url}: its identity is {other}, but this laptop is enrolled "
                f"at {enrolled}. It may be a second hub or an impostor; ask the coordinator "
                "(to push to a second hub of this room on purpose: --add-hub).",
                f"hub di {url} DITOLAK: identitasnya {other}, padahal laptop ini terdaftar "
                f"di {enrolled}. Mungkin hub lain atau palsu; tanyakan ke koordinator.",
                code="wrong_hub",
            )
            refused.append((url, err))
            continue
        found.append((link, hello))
        if choice.done:
            break  # first enrollment: one hub, the first candidate that answers
    return found, failed, refused


async def sync_once(
    store: ClientStore,
    session: aiohttp.ClientSession,
    *,
    hub_url: str | Sequence[str] | None = None,
    mdns_interfaces: list[str] | None = None,
    batch: int = DEFAULT_BATCH,
    add_hub: bool = False,
    hello_timeout: float = HELLO_TIMEOUT,
    progress: Callable[[int, int], None] | None = None,
    partial_max_age: float = PARTIAL_MAX_AGE,
) -> SyncReport:
    """One round: find the hub(s), check, enroll, push everything each lacks.

    Raises SyncError when no hub could be synced. When one was, the hubs and candidate
    addresses that failed are listed in ``report.errors`` (each with its ``url``).
    """
    urls = [hub_url] if isinstance(hub_url, str) else list(hub_url or ())
    urls = [u if "://" in u else f"http://{u}" for u in urls]  # "192.168.1.10:8470" is fine too
    report = SyncReport()
    targets = await find_hubs(
        store, session, hub_urls=urls, mdns_interfaces=mdns_interfaces, add=add_hub,
        hello_timeout=hello_timeout, report=report,
    )  # fmt: skip
    failures: list[SyncError] = []
    for link, hello in targets:
        try:
            await _sync_hub(store, link, hello, report, batch=batch, progress=progress,
                            partial_max_age=partial_max_age)  # fmt: skip
        except (ClientError, ProtocolError) as exc:
            err = exc if isinstance(exc, SyncError) else _as_sync_error(link.url, exc)
            if len(targets) == 1:
                raise err from None
            log.warning("sync with %s failed: %s", link.url, err)
            report.failed(link.url, err)
            failures.append(err)
    if len(failures) == len(targets):
        raise failures[0]
    await _where(store, report)
    return report


def _as_sync_error(url: str, exc: ClientError | ProtocolError) -> SyncError:
    """Any failure while syncing with one hub, as a bilingual SyncError with a stable code."""
    if isinstance(exc, ClientError):
        return SyncError(exc.message, exc.pesan, code=exc.code)
    return SyncError(
        f"hub at {url} sent something that does not check out: {exc.message}",
        f"hub di {url} mengirim data yang tidak sah: {exc.message}",
        code=exc.code,
    )


async def _sync_hub(
    store: ClientStore,
    link: HubLink,
    hello: Hello,
    report: SyncReport,
    *,
    batch: int,
    progress: Callable[[int, int], None] | None,
    partial_max_age: float = PARTIAL_MAX_AGE,
) -> None:
    hub_public, hub_id = hello.public, hello.node_id
    ident = store.identity
    now = clock.now_s()
    reply = await link.enroll(enroll.make_request(ident, hub_public, store.name, "laptop", now))
    pins = [p.public for p in await store.pinned_hubs()]
    if hub_public not in pins:
        await store.pin_hub(hub_public, hub_id, link.url, now, add=bool(pins))
        log.info("pinned hub %s at %s", hub_id, link.url)
    state, code = str(reply.get("state", "")), str(reply.get("code", ""))
    await store.set_hub_url(link.url, now, hub_public, state=state or None, code=code or None)
    if not report.hub_id:
        report.hub_id, report.hub_url, report.state, report.code = hub_id, link.url, state, code
    summary: dict[str, Any] = {"id": hub_id, "url": link.url, "state": state, "code": code,
                               "pushed": 0}  # fmt: skip
    report.hubs.append(summary)

    head = await link.head(ident.public)
    last = await store.last_seq()
    own = await store.hash_at(head.seq) if 0 < head.seq <= last else None
    check = sender.assess_head(head, last, own)
    if check.evidence is not None:
        # Hand the hub this laptop's own record: the same bytes are a harmless duplicate,
        # different bytes let the hub record the fork, so the coordinator sees it.
        with contextlib.suppress(SyncError):
            await link.push(await store.records_after(check.evidence - 1, 1))
    if check.verdict == sender.FORKED:
        raise SyncError(
            "the hub has stopped accepting this laptop: it saw two different entries with the same "
            "number (was this data folder copied to another laptop?). Tell the coordinator.",
            "hub berhenti menerima laptop ini: ada dua entri berbeda dengan nomor yang sama "
            "(apakah folder data ini disalin ke laptop lain?). Beri tahu koordinator.",
            code="forked",
        )
    if check.verdict == sender.BEHIND:
        raise SyncError(
            f"the hub holds {head.seq} entries from this laptop, but this laptop has only {last}: "
            "was its data folder restored from an old backup? Do not enter more forms here; tell "
            "the coordinator.",
            f"hub menyimpan {head.seq} entri dari laptop ini, padahal laptop ini hanya punya "
            f"{last}: apakah folder datanya dipulihkan dari cadangan lama? Jangan memasukkan "
            "formulir lagi di sini; beri tahu koordinator.",
            code="behind_hub",
        )
    if check.verdict == sender.DIVERGED:
        raise _copied(head.seq)
    await _take_upstream_receipt(store, head, hello)

    pusher = sender.Pusher(head.seq, last, batch)
    while (want := pusher.next()) is not None:
        raws = await store.records_after(*want)
        if not raws:
            break
        try:
            resp = await link.push(raws)
        except TooBigError:
            if not pusher.too_big():
                raise
            log.info("hub %s finds %d records too many at once; sending %d", hub_id,
                     len(raws), pusher.batch)  # fmt: skip
            continue
        report.pushed += len(raws)
        summary["pushed"] += len(raws)
        report.accepted += resp.accepted
        report.duplicate += resp.duplicate
        report.rejected.extend(resp.refused)
        kept = []
        for raw in resp.receipts:
            rc = receipt.decode(raw)
            if rc.origin == ident.public and await _keep(store, "hub", rc, [hub_public]):
                kept.append(rc.seq)
        step = pusher.replied(kept, resp.refused)
        if progress is not None:
            progress(step.to, last)
        if step.stuck:
            raise SyncError(
                f"hub {hub_id} did not take entries after #{step.after}: "
                f"{step.reason or 'no reason'}",
                f"hub {hub_id} tidak menerima entri setelah #{step.after}: {step.reason or '-'}",
                code=step.code,
            )
    if summary["pushed"]:
        await _take_upstream_receipt(store, await link.head(ident.public), hello)
    # Numbers first: the scans of the entries the hub now holds go after all of them.
    sent = await send_scans(store, link, partial_max_age=partial_max_age)
    summary["scans"] = sent.to_dict()
    if report.hubs[0] is summary:
        report.scans = sent


async def _take_upstream_receipt(store: ClientStore, head: sender.HubHead, hello: Hello) -> None:
    """Keep upstream's receipt the hub relays ("confirmed upstream"), if it is signed by the
    upstream the pinned hub names (in a statement the hub signs) and covers this laptop's own
    records."""
    rc = sender.relayed_confirmation(
        hello.public, hello.upstream, hello.upstream_sig, head.confirmed,
        origin=store.identity.public, last_seq=await store.last_seq(),
    )  # fmt: skip
    if rc is not None:
        await _keep(store, "upstream", rc, [rc.issuer])


async def _keep(store: ClientStore, kind: str, rc: receipt.Receipt, issuers: list[bytes]) -> bool:
    """Keep a receipt for this laptop's log once ``sender.judge_receipt`` says so; False for
    one that covers nothing. A receipt naming another entry than the one held here is a fork
    (SyncError ``forked``); one that is not signed by the hub expected, a SignatureError."""
    held = await store.hash_at(rc.seq) if rc.seq > 0 else None
    check = sender.judge_receipt(rc, origin=store.identity.public, issuers=issuers,
                                 held_hash=held)  # fmt: skip
    if check.verdict in (sender.NOT_HELD, sender.MISMATCH):
        raise _copied(rc.seq)
    if check.verdict == sender.UNSIGNED:
        raise SignatureError(f"receipt does not verify: {check.detail}")
    if check.verdict == sender.WRONG_ISSUER:
        raise SignatureError("receipt was issued by another node than the pinned hub")
    if not check.ok:
        return False
    await store.add_receipt(kind, check.receipt)
    return True


def _copied(seq: int) -> SyncError:
    return SyncError(
        f"the hub's copy of entry {seq} differs from this laptop's: the log has forked "
        "(a copied data folder?). Stop entering on this laptop and tell the coordinator.",
        f"salinan entri {seq} di hub berbeda dengan di laptop ini (folder data disalin?). "
        "Berhenti memasukkan di laptop ini dan beri tahu koordinator.",
        code="forked",
    )


async def _where(store: ClientStore, report: SyncReport) -> None:
    where = (await store.marks()).where(await store.last_seq())
    report.at_hub, report.local_only = where.at_hub, where.local_only
    report.confirmed_upstream = where.confirmed_upstream


async def sync_forever(
    store: ClientStore,
    *,
    hub_url: str | Sequence[str] | None,
    mdns_interfaces: list[str] | None,
    batch: int = DEFAULT_BATCH,
    add_hub: bool = False,
    hello_timeout: float = HELLO_TIMEOUT,
    partial_max_age: float = PARTIAL_MAX_AGE,
    poll: float = 2.0,
    on_report: Callable[[SyncReport], None] | None = None,
    on_error: Callable[[str, float], None] | None = None,
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
) -> None:
    """Keep the hub(s) up to date until ``stop`` is set. Failures back off exponentially with
    full jitter (``hub.protocol.pacing.Backoff``), never for less than a busy hub's
    Retry-After; a success resets the backoff."""
    rng = rng or random.Random()
    stop = stop or asyncio.Event()
    backoff = Backoff(base=BACKOFF_BASE, cap=BACKOFF_CAP)
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                rep = await sync_once(store, session, hub_url=hub_url,
                                      mdns_interfaces=mdns_interfaces, batch=batch,
                                      add_hub=add_hub, hello_timeout=hello_timeout,
                                      partial_max_age=partial_max_age)  # fmt: skip
            except (ClientError, ProtocolError) as exc:  # e.g. the store is busy: retry later
                retry_after = exc.retry_after if isinstance(exc, SyncError) else None
                delay = backoff.failed(clock.monotonic(), rng, retry_after)
                if on_error is not None:
                    on_error(str(exc), delay)
                log.warning("sync failed (%s); retrying in %.1fs", exc, delay)
            else:
                backoff.succeeded()
                add_hub = False  # added hubs are pinned now
                delay = poll
                if on_report is not None:
                    on_report(rep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
