"""client.sync against real in-process hubs on 127.0.0.1 with real SQLite on both sides."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from client.errors import ClientError
from client.store import ClientStore
from client.sync import SyncError, SyncReport, sync_forever, sync_once
from hub.config import HubConfig
from hub.node import Hub, init_data_dir
from hub.protocol import codec, entry
from hub.protocol.pacing import Backoff
from tests.helpers import ENTERED_AT, forms


def make_hub(tmp: Path, name: str, **kw: object) -> Hub:
    init_data_dir(tmp / name, name)
    return Hub(HubConfig(data_dir=tmp / name, host="127.0.0.1", port=0, mdns=False, **kw))  # type: ignore[arg-type]


async def laptop(tmp: Path, name: str, n: int, seed: int = 1) -> ClientStore:
    store, _ = await ClientStore.create(tmp / name, name, now=ENTERED_AT)
    await store.append([entry.encode_body(entry.parse(f), ENTERED_AT) for f in forms(n, seed)])
    return store


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_first_sync_pins_enrolls_and_keeps_receipts(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "hub") as hub:
        store = await laptop(tmp_path, "l1", 30)
        try:
            rep = await sync_once(store, http, hub_url=hub.url, batch=7)
            assert rep.state == "pending" and rep.code == hub.status()["device_list"][0]["code"]
            assert (rep.pushed, rep.accepted, rep.at_hub, rep.local_only) == (30, 30, 30, 0)
            assert (await store.pinned_hubs())[0].public == hub.ident.public
            assert await store.highest_receipt("hub") == 30
            info = (await store.summary()).hub
            assert info is not None and (info.state, info.code) == ("pending", rep.code)
            await hub.approve(hub.service.store.devices[store.identity.public])
            again = await sync_once(store, http, hub_url=hub.url)
            assert again.pushed == 0 and again.at_hub == 30
            info = (await store.summary()).hub
            assert info is not None and info.state == "approved"
        finally:
            await store.close()


async def test_other_hub_refused_even_when_given_by_hand(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "a") as a, make_hub(tmp_path, "b") as b:
        store = await laptop(tmp_path, "l1", 5)
        try:
            await sync_once(store, http, hub_url=a.url)
            with pytest.raises(SyncError) as err:
                await sync_once(store, http, hub_url=b.url)
            assert err.value.code == "wrong_hub"
            assert b.ident.node_id in err.value.message and a.ident.node_id in err.value.message
            assert b.service.store.records_stored == 0 and not b.service.store.devices
            # With the pinned hub in the same round: that round is a success; the other hub
            # is listed in refused_hubs (it answered, with another key), not in errors.
            rep = await sync_once(store, http, hub_url=[b.url, a.url])
            assert (rep.hub_url, rep.refused_hubs, rep.errors) == (a.url, [b.url], [])
        finally:
            await store.close()


async def test_laptop_enrolled_at_two_hubs_pushes_to_both_root_holds_once(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        async with (
            make_hub(tmp_path, "a", upstream=root.url) as a,
            make_hub(tmp_path, "b", upstream=root.url) as b,
        ):
            for h in (a, b):
                await eventually(lambda h=h: h.ident.public in root.service.store.devices)
                await root.approve(root.service.store.devices[h.ident.public])
            store = await laptop(tmp_path, "l1", 12)
            try:
                await sync_once(store, http, hub_url=a.url)
                rep = await sync_once(store, http, hub_url=[a.url, b.url], add_hub=True)
                assert [h["id"] for h in rep.hubs] == [a.ident.node_id, b.ident.node_id]
                assert len(await store.pinned_hubs()) == 2
                for h in (a, b):
                    await h.approve(h.service.store.devices[store.identity.public])
                    assert h.service.store.head_of(store.identity.public).seq == 12
                await eventually(lambda: root.status()["entries"]["accepted"] == 12)
                await asyncio.sleep(0.3)
                assert root.status()["entries"]["total"] == 12
                # Both pinned hubs are synced without naming them again.
                await store.append([entry.encode_body(entry.parse(forms(1, 9)[0]), ENTERED_AT)])
                rep = await sync_once(store, http, hub_url=[a.url, b.url])
                assert {h["pushed"] for h in rep.hubs} == {1}
                await eventually(lambda: root.status()["entries"]["accepted"] == 13)
                await eventually(
                    lambda: (
                        a.status()["upstream"]["backlog"] == 0
                        and b.status()["upstream"]["backlog"] == 0
                    )
                )
                rep = await sync_once(store, http, hub_url=[a.url, b.url])
                assert rep.confirmed_upstream == 13
            finally:
                await store.close()


async def test_confirmed_upstream_reaches_the_laptop(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "root", root=True) as root:
        async with make_hub(tmp_path, "room", upstream=root.url) as room:
            await eventually(lambda: room.ident.public in root.service.store.devices)
            await root.approve(root.service.store.devices[room.ident.public])
            store = await laptop(tmp_path, "l1", 9)
            try:
                await sync_once(store, http, hub_url=room.url)
                await room.approve(room.service.store.devices[store.identity.public])
                await eventually(lambda: room.status()["upstream"]["confirmed"] == 9)
                rep = await sync_once(store, http, hub_url=room.url)
                assert rep.confirmed_upstream == 9
                s = await store.summary()
                assert (s.confirmed_upstream, s.at_hub, s.local_only) == (9, 9, 0)
            finally:
                await store.close()


async def test_unreachable_hub_is_a_clear_error(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    store = await laptop(tmp_path, "l1", 1)
    try:
        with pytest.raises(ClientError) as err:
            await sync_once(store, http, hub_url="http://127.0.0.1:9")
        assert err.value.code == "unreachable"
        assert "tidak dapat dihubungi" in err.value.pesan
    finally:
        await store.close()


def test_backoff_is_capped_full_jitter() -> None:
    import random

    b = Backoff(base=1.0, cap=8.0)
    rng = random.Random(3)
    delays = [b.failed(0.0, rng) for _ in range(12)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert max(delays[6:]) > 4.0  # the ceiling grew to the cap
    assert b.failed(0.0, rng, retry_after=20.0) >= 20.0  # Retry-After wins
    b.succeeded()
    assert b.failures == 0 and not b.waiting(0.0)


async def test_copied_hello_cannot_pass_for_the_pinned_hub(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """An impostor replays the real hub's hello (same key) but cannot sign a fresh nonce."""
    from aiohttp import web

    from hub.protocol import codec

    async with make_hub(tmp_path, "hub") as hub:
        store = await laptop(tmp_path, "l1", 3)
        try:
            await sync_once(store, http, hub_url=hub.url)
            async with http.get(hub.url + "/v1/hello?nonce=" + "00" * 16) as r:
                copied = await r.read()

            async def fake_hello(request: web.Request) -> web.Response:
                return web.Response(body=copied, content_type="application/msgpack")

            app = web.Application()
            app.router.add_get("/v1/hello", fake_hello)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            try:
                assert codec.unpack(copied, canonical=False)["public"] == hub.ident.public
                with pytest.raises(SyncError) as err:
                    await sync_once(store, http, hub_url=f"http://127.0.0.1:{port}")
                assert err.value.code == "wrong_hub" and "cannot prove" in err.value.message
                assert (await store.pinned_hubs())[0].url == hub.url  # not re-pointed
            finally:
                await runner.cleanup()
        finally:
            await store.close()


# -- a hub that is busy, or finds a batch too big --------------------------------------------


class Front:
    """An HTTP front on 127.0.0.1 before a real hub, as a proxy or a loaded server answers: the
    first pushes with 429 and 503 (with Retry-After), pushes of more than ``max_records``
    records with a bare 413; everything else passes through to the hub."""

    def __init__(self, hub_url: str, busy: list[tuple[int, str, bytes]], max_records: int):
        self.hub_url = hub_url
        self.busy = list(busy)
        self.max_records = max_records
        self.pushes: list[tuple[int, int]] = []  # (records, status answered)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/v1/push":
            n = len(codec.unpack(body, canonical=False)["records"])
            if n > self.max_records:
                self.pushes.append((n, 413))
                return web.Response(status=413, text="Request Entity Too Large")
            if self.busy:
                status, retry_after, reply = self.busy.pop(0)
                self.pushes.append((n, status))
                return web.Response(status=status, body=reply, headers={"Retry-After": retry_after})
            self.pushes.append((n, 200))
        async with (
            aiohttp.ClientSession() as s,
            s.request(
                request.method,
                self.hub_url + request.path_qs,
                data=body or None,
                headers={
                    k: v for k, v in request.headers.items() if k in ("Content-Type", "Accept")
                },
            ) as r,  # fmt: skip
        ):
            return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)

    async def __aenter__(self) -> Front:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_batch_too_big_for_the_hub_is_halved(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The hub's own limit (413 too_large): the laptop halves its batch and goes on."""
    async with make_hub(tmp_path, "hub", max_batch=40) as hub:
        store = await laptop(tmp_path, "l1", 100)
        try:
            rep = await sync_once(store, http, hub_url=hub.url, batch=500)
            assert (rep.pushed, rep.accepted, rep.at_hub, rep.local_only) == (100, 100, 100, 0)
            assert hub.service.store.head_of(store.identity.public).seq == 100
        finally:
            await store.close()


async def test_busy_hub_is_left_alone_for_its_retry_after(tmp_path: Path) -> None:
    """429 and 503 with Retry-After: the laptop waits at least that long before trying again
    (not its own short backoff), and a bare 413 from a front halves the batch."""
    unavailable = codec.pack({"error": {"code": "unavailable", "reason": "database failed"}})
    async with make_hub(tmp_path, "hub") as hub:
        busy = [(429, "1", b"slow down"), (503, "2", unavailable)]
        async with Front(hub.url or "", busy, max_records=30) as front:
            store = await laptop(tmp_path, "l1", 70)
            errors: list[tuple[str, float]] = []
            reports: list[SyncReport] = []
            stop = asyncio.Event()

            def on_error(reason: str, delay: float) -> None:
                errors.append((reason, delay))
                if len(errors) > 4:
                    stop.set()  # today's code would retry quickly forever: give up

            def on_report(rep: SyncReport) -> None:
                reports.append(rep)
                if rep.at_hub == 70:
                    stop.set()

            try:
                await sync_forever(store, hub_url=front.url, mdns_interfaces=None, batch=100,
                                   on_report=on_report, on_error=on_error, stop=stop,
                                   rng=random.Random(1))  # fmt: skip
            finally:
                await store.close()
        assert len(errors) == 2, errors
        for (_reason, delay), (_status, retry_after, _body) in zip(errors, busy, strict=True):
            assert delay >= float(retry_after), errors
        assert "unavailable" in errors[1][0]
        assert reports and reports[-1].at_hub == 70
        assert hub.service.store.head_of(store.identity.public).seq == 70
        # 70 records were too many for the front: the batch of 100 halved to 50, then 25.
        assert front.pushes[:3] == [(70, 413), (50, 413), (25, 429)]
        assert all(n <= 30 for n, status in front.pushes if status != 413)
        assert sum(n for n, status in front.pushes if status == 200) == 70


# -- hub candidates that never answer (docs/security.md, finding 12) --------------------------


class Silent:
    """``n`` listeners on 127.0.0.1 that accept connections, read what comes and never answer
    (a rogue address). ``most_open``: the most of their connections open at once."""

    def __init__(self, n: int):
        self.n = n
        self.servers: list[asyncio.Server] = []
        self.urls: list[str] = []
        self.open = 0
        self.most_open = 0
        self.accepted = 0

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            while await reader.read(4096):
                pass  # the laptop gives up and closes: read returns b""
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()

    async def __aenter__(self) -> Silent:
        for _ in range(self.n):
            server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
            self.servers.append(server)
            self.urls.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        await eventually(lambda: self.open == 0)


async def test_silent_candidates_are_asked_at_once_and_reported(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "hub") as hub:
        store = await laptop(tmp_path, "l1", 5)
        try:
            await sync_once(store, http, hub_url=hub.url)  # pins the hub
            await store.append([entry.encode_body(entry.parse(f), ENTERED_AT)
                                for f in forms(4, seed=2)])  # fmt: skip
            async with Silent(2) as silent:
                rep = await sync_once(
                    store, http, hub_url=[*silent.urls, hub.url], hello_timeout=0.5
                )
            # Both silent candidates held a connection open at the same time: asked at once,
            # not one after the other.
            assert (silent.accepted, silent.most_open) == (2, 2)
            assert (rep.hub_url, rep.accepted, rep.local_only) == (hub.url, 4, 0)
            assert [(e["url"], e["code"]) for e in rep.to_dict()["errors"]] == [
                (silent.urls[0], "unreachable"), (silent.urls[1], "unreachable")
            ]  # fmt: skip
            for e in rep.errors:
                assert set(e) == {"url", "code", "reason", "reason_id"}
                assert "no answer within 0.5 s" in e["reason"], e
                assert e["url"] in e["reason"] and e["url"] in e["reason_id"]
            assert rep.refused_hubs == []
        finally:
            await store.close()


async def test_first_enrollment_skips_a_silent_candidate(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with make_hub(tmp_path, "hub") as hub, Silent(1) as silent:
        store = await laptop(tmp_path, "l1", 3)
        try:
            rep = await sync_once(store, http, hub_url=[silent.urls[0], hub.url],
                                  hello_timeout=0.5)  # fmt: skip
            assert [p.public for p in await store.pinned_hubs()] == [hub.ident.public]
            assert rep.at_hub == 3
            assert [(e["url"], e["code"]) for e in rep.errors] == [(silent.urls[0], "unreachable")]
        finally:
            await store.close()


async def test_a_round_with_only_silent_candidates_fails_with_their_reason(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with Silent(2) as silent:
        store = await laptop(tmp_path, "l1", 1)
        try:
            with pytest.raises(SyncError) as err:
                await sync_once(store, http, hub_url=silent.urls, hello_timeout=0.5)
            assert err.value.code == "unreachable"
            assert err.value.message.count("no answer within 0.5 s") == 2
            assert silent.most_open == 2
            assert await store.pinned_hubs() == []
        finally:
            await store.close()


# -- text from a hub is escaped (docs/security.md, finding 8) ---------------------------------

FORGED = "2026-02-14 08:00:00 WARNING client.sync: hub approved this laptop"


class Rogue:
    """A hub of its own key (it proves it in hello) whose every text answer carries control,
    line-break and bidi characters: what a hostile machine on the LAN can send."""

    def __init__(self) -> None:
        from hub.protocol.identity import Identity

        self.ident = Identity.generate()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def hello(self, request: web.Request) -> web.Response:
        from hub.protocol import enroll, identity

        nonce = bytes.fromhex(request.query["nonce"])
        return self.reply({
            "node_id": identity.fingerprint(self.ident.public), "public": self.ident.public,
            "name": "Hub\x1b]0;owned\x07 \u202eA", "role": "hub\n", "version": 1,
            "proof": enroll.prove(self.ident, nonce),
        })  # fmt: skip

    async def enroll(self, request: web.Request) -> web.Response:
        return self.reply({"state": "pending\x1b[2J", "code": "1234\r5678\u2028" + FORGED})

    async def head(self, request: web.Request) -> web.Response:
        return self.reply({"seq": 0, "hash": bytes(32)})

    async def push(self, request: web.Request) -> web.Response:
        refused = {"index": 0, "decision": "reject", "seq": 1, "code": "bad\x85entry",
                   "reason": "refused\n" + FORGED + "\x1b[31m"}  # fmt: skip
        return self.reply({"accepted": 0, "duplicate": 0, "rejected": [refused], "forks": [],
                           "receipts": []})  # fmt: skip

    @staticmethod
    def reply(obj: object) -> web.Response:
        return web.Response(body=codec.pack(obj), content_type="application/msgpack")

    async def __aenter__(self) -> Rogue:
        app = web.Application()
        app.router.add_get("/v1/hello", self.hello)
        app.router.add_post("/v1/enroll", self.enroll)
        app.router.add_get("/v1/heads/{origin}", self.head)
        app.router.add_post("/v1/push", self.push)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def one_line(text: str) -> bool:
    from hub.protocol.text import refused_at

    return refused_at(text) == -1


async def test_text_from_a_hub_is_kept_and_reported_escaped(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    from client.hublink import HubLink

    async with Rogue() as rogue:
        hello = await HubLink(http, rogue.url).hello()
        assert hello.name == "Hub\\x1b]0;owned\\x07 \\u202eA" and hello.role == "hub\\n"
        store = await laptop(tmp_path, "l1", 2)
        try:
            with pytest.raises(SyncError) as err:
                await sync_once(store, http, hub_url=rogue.url)
            # Nothing moved: the round fails with the hub's reason, escaped.
            assert "refused\\n" + FORGED + "\\x1b[31m" in err.value.message
            assert err.value.code == "bad\\x85entry"
            assert one_line(err.value.message) and one_line(err.value.pesan)
            info = await store.hub_info()
            assert info is not None
            assert (info.state, info.code) == ("pending\\x1b[2J", "1234\\r5678\\u2028" + FORGED)
        finally:
            await store.close()


async def test_a_hubs_error_body_is_escaped(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    async def refuse(request: web.Request) -> web.Response:
        body = {"error": {"code": "no\x1b[2J", "reason": "go away\n" + FORGED}}
        return web.Response(status=400, body=codec.pack(body), content_type="application/msgpack")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    store = await laptop(tmp_path, "l1", 1)
    try:
        with pytest.raises(SyncError) as err:
            await sync_once(store, http, hub_url=f"http://127.0.0.1:{runner.addresses[0][1]}")
        assert err.value.code == "no\\x1b[2J"
        assert "go away\\n" + FORGED in err.value.message
        assert one_line(err.value.message) and one_line(err.value.pesan)
    finally:
        await store.close()
        await runner.cleanup()
