"""``HttpUpstream`` over a real socket: what aiohttp reports becomes what the outbox needs."""

from __future__ import annotations

import pytest

from hub.errors import UpstreamError
from hub.protocol import clock, enroll, receipt
from hub.protocol.identity import Identity
from hub.upstream import HttpUpstream
from tests.helpers import chain, forms
from tests.hub.fakes import BUSY, FakeRoot, serve


async def test_a_round_trip_through_http() -> None:
    root = FakeRoot()
    hub = Identity.generate()
    laptop = Identity.generate()
    recs = [r.raw for r in chain(laptop, forms(3))]
    async with serve(root) as url:
        up = HttpUpstream(url + "/")
        try:
            assert up.url == url
            hello = await up.hello()
            assert hello.public == root.ident.public and hello.node_id == root.ident.node_id
            reply = await up.enroll(
                enroll.make_request(hub, hello.public, "room", "hub", clock.now_s())
            )
            assert reply["state"] == "approved"
            reply = await up.push(recs, [])
            assert reply["accepted"] == 3
            receipt.decode(reply["receipts"][0]).check(root.ident.public)
            reply = await up.heads([laptop.public])
            assert reply["heads"][0][:2] == [laptop.public, 3]
        finally:
            await up.close()
    assert [c.path for c in root.calls] == ["hello", "enroll", "push", "heads"]


async def test_failures_say_what_the_outbox_needs_to_know() -> None:
    root = FakeRoot()
    async with serve(root) as url:
        up = HttpUpstream(url)
        try:
            root.fail_next(BUSY, retry_after=7)
            with pytest.raises(UpstreamError) as busy:
                await up.heads([])
            assert busy.value.retry_after == 7 and not busy.value.too_big
            assert str(busy.value).startswith(f"upstream {url} is busy")

            root.max_records = 1
            recs = [r.raw for r in chain(Identity.generate(), forms(2))]
            with pytest.raises(UpstreamError) as big:
                await up.push(recs, None)
            assert big.value.too_big and big.value.retry_after is None

            root.impostor = True
            with pytest.raises(UpstreamError, match=r"^REFUSED: upstream .* cannot prove"):
                await up.hello()
        finally:
            await up.close()
    up = HttpUpstream(url)  # nobody listens there any more
    try:
        with pytest.raises(UpstreamError, match=r"^cannot reach upstream http://127\.0\.0\.1"):
            await up.hello()
    finally:
        await up.close()
