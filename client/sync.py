"""Pushing a laptop's log to its hub (DESIGN §2.1, §2.4, §2.6).

One round (``sync_once``): find the hub (``--hub`` URL, else mDNS, else the last address that
worked), check its identity against the pinned key (pinning it at first enrollment), enroll
(idempotent), ask which seq the hub holds for this laptop, push the rest in seq order in
batches, and keep each signed receipt after checking it: signed by the pinned hub, naming a seq
and hash that match this laptop's own record. Entries up to a receipt's seq are "at hub".

``sync_forever`` repeats rounds as entries are added and as the hub comes and goes, with capped
exponential backoff and full jitter between failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from client.errors import ClientError, SyncError
from client.store import ClientStore
from hub.protocol import clock, codec, enroll, identity, receipt
from hub.protocol.errors import ProtocolError
from hub.protocol.pacing import Backoff

log = logging.getLogger(__name__)

MSGPACK = "application/msgpack"
DEFAULT_BATCH = 500
CALL_TIMEOUT = 30.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 15.0  # one hub on the room's LAN: come back quickly after it restarts


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
        }


class HubLink:
    """Thin msgpack-over-HTTP calls to one hub; every call has a timeout."""

    def __init__(self, session: aiohttp.ClientSession, url: str):
        self.session = session
        self.url = url.rstrip("/")

    async def _call(self, method: str, path: str, body: bytes | None = None) -> Any:
        headers = {"Accept": MSGPACK}
        if body is not None:
            headers["Content-Type"] = MSGPACK
        try:
            async with self.session.request(
                method,
                self.url + path,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT),
            ) as r:
                data = await r.read()
                try:
                    obj = codec.unpack(data, canonical=False) if data else {}
                except ProtocolError:
                    raise SyncError(
                        f"{self.url} answered HTTP {r.status} with something that is not a "
                        "c1hub reply; is this address really a c1hub hub?",
                        f"{self.url} menjawab HTTP {r.status} yang bukan balasan c1hub; "
                        "benarkah ini alamat hub c1hub?",
                        code="not_a_hub",
                    ) from None
                if r.status >= 400:
                    err = obj.get("error", {}) if isinstance(obj, dict) else {}
                    reason = err.get("reason", f"HTTP {r.status}")
                    raise SyncError(
                        f"hub refused {path}: {reason} ({err.get('code', r.status)})",
                        f"hub menolak {path}: {reason} ({err.get('code', r.status)})",
                        code=str(err.get("code", "refused")),
                    )
                return obj
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SyncError(
                f"cannot reach hub at {self.url}: {exc or type(exc).__name__}",
                f"hub di {self.url} tidak dapat dihubungi: {exc or type(exc).__name__}",
                code="unreachable",
            ) from None

    async def hello(self) -> dict[str, Any]:
        """The hub's hello, with proof that it holds the key it names (a fresh nonce it signs):
        only then may that key be trusted as the pinned hub's."""
        nonce = os.urandom(enroll.NONCE_LEN)
        h: dict[str, Any] = await self._call("GET", f"/v1/hello?nonce={nonce.hex()}")
        public = h.get("public") if isinstance(h, dict) else None
        if type(public) is not bytes or len(public) != 32:
            raise SyncError(
                f"{self.url} is not a c1hub hub",
                f"{self.url} bukan hub c1hub",
                code="not_a_hub",
            )
        try:
            enroll.check_proof(public, nonce, h.get("proof", b""))
        except ProtocolError:
            raise SyncError(
                f"{self.url} claims hub key {identity.fingerprint(public)} but cannot prove it "
                "holds it: an impostor? Ask the coordinator.",
                f"{self.url} mengaku sebagai hub {identity.fingerprint(public)} tetapi tidak "
                "dapat membuktikannya: hub palsu? Tanyakan ke koordinator.",
                code="wrong_hub",
            ) from None
        return h

    async def enroll(self, raw: bytes) -> dict[str, Any]:
        r: dict[str, Any] = await self._call("POST", "/v1/enroll", raw)
        return r

    async def head(self, origin: bytes) -> dict[str, Any]:
        r: dict[str, Any] = await self._call("GET", f"/v1/heads/{origin.hex()}")
        return r

    async def work(self, query: str) -> dict[str, Any]:
        """The hub's double-entry work list (``GET /v1/work``; docs/protocol.md)."""
        r: dict[str, Any] = await self._call("GET", f"/v1/work?{query}")
        return r

    async def push(self, records: list[bytes]) -> dict[str, Any]:
        r: dict[str, Any] = await self._call("POST", "/v1/push", codec.pack({"records": records}))
        return r


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
    report: SyncReport | None = None,
) -> list[tuple[HubLink, dict[str, Any]]]:
    """The hubs to sync with: reachable, and each either pinned, or the first hub ever (pinned
    at first enrollment), or — with ``add`` — a second hub of the same room."""
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
    found: dict[bytes, tuple[HubLink, dict[str, Any]]] = {}
    errors: list[SyncError] = []
    for url in urls:
        link = HubLink(session, url)
        try:
            h = await link.hello()
        except SyncError as exc:
            errors.append(exc)
            continue
        public: bytes = h["public"]
        if public in found:
            continue
        if pins and public not in pins and not add:
            enrolled = ", ".join(p.node_id for p in pins.values())
            other = identity.fingerprint(public)
            log.warning("refused hub at %s: identity %s is not the pinned %s", url, other, enrolled)
            if report is not None:
                report.refused_hubs.append(url)
            errors.append(
                SyncError(
                    f"REFUSED hub at {url}: its identity is {other}, but this laptop is enrolled "
                    f"at {enrolled}. It may be a second hub or an impostor; ask the coordinator "
                    "(to push to a second hub of this room on purpose: --add-hub).",
                    f"hub di {url} DITOLAK: identitasnya {other}, padahal laptop ini terdaftar "
                    f"di {enrolled}. Mungkin hub lain atau palsu; tanyakan ke koordinator.",
                    code="wrong_hub",
                )
            )
            continue
        found[public] = (link, h)
        if not pins and not add:
            break  # first enrollment: one hub, the first that answers
    if not found:
        if len(errors) == 1:
            raise errors[0]
        raise SyncError(
            "; ".join(e.message for e in errors),
            "; ".join(e.pesan for e in errors),
            code=errors[0].code if errors else "no_hub",
        )
    return list(found.values())


async def sync_once(
    store: ClientStore,
    session: aiohttp.ClientSession,
    *,
    hub_url: str | Sequence[str] | None = None,
    mdns_interfaces: list[str] | None = None,
    batch: int = DEFAULT_BATCH,
    add_hub: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SyncReport:
    """One round: find the hub(s), check, enroll, push everything each lacks.

    Raises SyncError when no hub could be synced; when several hubs are pinned and only some
    fail, the failures are listed in ``report.errors``.
    """
    urls = [hub_url] if isinstance(hub_url, str) else list(hub_url or ())
    urls = [u if "://" in u else f"http://{u}" for u in urls]  # "192.168.1.10:8470" is fine too
    report = SyncReport()
    targets = await find_hubs(
        store, session, hub_urls=urls, mdns_interfaces=mdns_interfaces, add=add_hub,
        report=report,
    )  # fmt: skip
    failures: list[SyncError] = []
    for link, hello in targets:
        try:
            await _sync_hub(store, link, hello, report, batch=batch, progress=progress)
        except (ClientError, ProtocolError) as exc:
            err = exc if isinstance(exc, SyncError) else _as_sync_error(link.url, exc)
            if len(targets) == 1:
                raise err from None
            log.warning("sync with %s failed: %s", link.url, err)
            report.errors.append(err.to_dict())
            failures.append(err)
    if len(failures) == len(targets):
        raise failures[0]
    await _keep_receipt_floor(store, report)
    report.confirmed_upstream = await store.highest_receipt("upstream")
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
    hello: dict[str, Any],
    report: SyncReport,
    *,
    batch: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    hub_public: bytes = hello["public"]
    hub_id = identity.fingerprint(hub_public)
    ident = store.identity
    now = clock.now_s()
    reply = await link.enroll(enroll.make_request(ident, hub_public, store.name, "laptop", now))
    pins = await store.pinned_hubs()
    if all(p.public != hub_public for p in pins):
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
    hub_seq = int(head["seq"])
    last = await store.last_seq()
    if head.get("forked"):
        raise SyncError(
            "the hub has stopped accepting this laptop: it saw two different entries with the same "
            "number (was this data folder copied to another laptop?). Tell the coordinator.",
            "hub berhenti menerima laptop ini: ada dua entri berbeda dengan nomor yang sama "
            "(apakah folder data ini disalin ke laptop lain?). Beri tahu koordinator.",
            code="forked",
        )
    if hub_seq > last:
        # A restored backup or a copied folder: hand the hub this laptop's newest record. The
        # same bytes are a harmless duplicate; different bytes let the hub record the fork.
        if last > 0:
            with contextlib.suppress(SyncError):
                await link.push(await store.records_after(last - 1, 1))
        raise SyncError(
            f"the hub holds {hub_seq} entries from this laptop, but this laptop has only {last}: "
            "was its data folder restored from an old backup? Do not enter more forms here; tell "
            "the coordinator.",
            f"hub menyimpan {hub_seq} entri dari laptop ini, padahal laptop ini hanya punya "
            f"{last}: apakah folder datanya dipulihkan dari cadangan lama? Jangan memasukkan "
            "formulir lagi di sini; beri tahu koordinator.",
            code="behind_hub",
        )
    if hub_seq > 0 and await store.hash_at(hub_seq) != head["hash"]:
        # The hub holds another entry under this number: this laptop's log forked (a copied
        # data folder). Hand the hub this laptop's own record as evidence, so the coordinator
        # sees the fork, then stop.
        with contextlib.suppress(SyncError):
            await link.push(await store.records_after(hub_seq - 1, 1))
        await _check_receipt_like(store, hub_seq, head["hash"])
    await _take_upstream_receipt(store, head, hello)
    sent = hub_seq
    while sent < last:
        raws = await store.records_after(sent, batch)
        if not raws:
            break
        resp = await link.push(raws)
        report.pushed += len(raws)
        summary["pushed"] += len(raws)
        report.accepted += int(resp.get("accepted", 0))
        report.duplicate += int(resp.get("duplicate", 0))
        rejected = list(resp.get("rejected", [])) + list(resp.get("forks", []))
        report.rejected.extend(rejected)
        newest = sent
        for raw in resp.get("receipts", []):
            rc = receipt.decode(raw)
            if rc.origin != ident.public:
                continue
            rc.check(hub_public)
            await _check_receipt_like(store, rc.seq, rc.hash)
            await store.add_receipt("hub", rc)
            newest = max(newest, rc.seq)
        if progress is not None:
            progress(newest, last)
        if newest <= sent:
            first = rejected[0] if rejected else {}
            more = f" (+{len(rejected) - 1} more)" if len(rejected) > 1 else ""
            reasons = f"#{first.get('seq')}: {first.get('reason')}{more}" if first else ""
            raise SyncError(
                f"hub {hub_id} did not take entries after #{sent}: {reasons or 'no reason'}",
                f"hub {hub_id} tidak menerima entri setelah #{sent}: {reasons or '-'}",
                code=str(rejected[0].get("code")) if rejected else "not_taken",
            )
        sent = newest
    if summary["pushed"]:
        await _take_upstream_receipt(store, await link.head(ident.public), hello)


async def _take_upstream_receipt(
    store: ClientStore, head: dict[str, Any], hello: dict[str, Any]
) -> None:
    """Keep upstream's receipt the hub relays ("confirmed upstream"), if it is signed by the
    upstream the pinned hub names (in a statement the hub signs) and covers this laptop's own
    records."""
    raw, upstream, sig = head.get("confirmed"), hello.get("upstream"), hello.get("upstream_sig")
    if type(raw) is not bytes or type(upstream) is not bytes or type(sig) is not bytes:
        return
    receipt.check_upstream(hello["public"], upstream, sig)  # the pinned hub names its upstream
    rc = receipt.decode(raw)
    rc.check(upstream)
    if rc.origin == store.identity.public and rc.seq <= await store.last_seq():
        await _check_receipt_like(store, rc.seq, rc.hash)
        await store.add_receipt("upstream", rc)


async def _check_receipt_like(store: ClientStore, seq: int, hash_: bytes) -> None:
    mine = await store.hash_at(seq)
    if mine != hash_:
        raise SyncError(
            f"the hub's copy of entry {seq} differs from this laptop's: the log has forked "
            "(a copied data folder?). Stop entering on this laptop and tell the coordinator.",
            f"salinan entri {seq} di hub berbeda dengan di laptop ini (folder data disalin?). "
            "Berhenti memasukkan di laptop ini dan beri tahu koordinator.",
            code="forked",
        )


async def _keep_receipt_floor(store: ClientStore, report: SyncReport) -> None:
    marks = await store.marks()
    last = await store.last_seq()
    report.at_hub = min(max(marks.hub, marks.upstream), last)
    report.local_only = max(last - report.at_hub, 0)


async def sync_forever(
    store: ClientStore,
    *,
    hub_url: str | Sequence[str] | None,
    mdns_interfaces: list[str] | None,
    batch: int = DEFAULT_BATCH,
    add_hub: bool = False,
    poll: float = 2.0,
    on_report: Callable[[SyncReport], None] | None = None,
    on_error: Callable[[str, float], None] | None = None,
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
) -> None:
    """Keep the hub(s) up to date until ``stop`` is set. Failures back off exponentially with
    full jitter (``hub.protocol.pacing.Backoff``); a success resets the backoff."""
    rng = rng or random.Random()
    stop = stop or asyncio.Event()
    backoff = Backoff(base=BACKOFF_BASE, cap=BACKOFF_CAP)
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                rep = await sync_once(store, session, hub_url=hub_url,
                                      mdns_interfaces=mdns_interfaces, batch=batch,
                                      add_hub=add_hub)  # fmt: skip
            except (ClientError, ProtocolError) as exc:  # e.g. the store is busy: retry later
                delay = backoff.failed(clock.monotonic(), rng)
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
