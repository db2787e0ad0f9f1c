"""No request handler holds the event loop for more than about 50 ms, at any input size the
limits allow (issue 8, finding 3). While the big requests below are handled, the loop guard
(tests/loopguard.py) runs with its CPU limit lowered from 100 ms to 50 ms: a callback of the
hub that takes more CPU than that fails the test. CPU time, not wall time, so a loaded machine
cannot fail it; the work is CPU-bound on purpose."""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor

import msgpack
import pytest

from hub.examine import make_pool
from hub.protocol import codec, enroll
from hub.protocol.identity import Identity
from hub.protocol.quota import Quotas
from tests import loopguard
from tests.helpers import chain, forms

from .conftest import Served

MSGPACK = {"Content-Type": "application/msgpack"}


@contextlib.contextmanager
def stalls_over_50_ms_fail() -> Iterator[None]:
    """The guard at 50 ms. What the test process holds already (pytest, the test's data) is
    collected and frozen first (``gc.freeze``): a garbage collection then scans what the
    request makes, as in a hub process, not everything this process holds, and it would
    land in whichever callback runs at the time."""
    gc.collect()
    gc.freeze()
    old = loopguard.CPU_LIMIT_S
    loopguard.CPU_LIMIT_S = 0.050
    try:
        yield
    finally:
        loopguard.CPU_LIMIT_S = old
        gc.unfreeze()


@pytest.fixture
async def pool() -> AsyncIterator[Executor]:
    """The examine pool the hub runs with: worker processes."""
    p = make_pool(None)
    try:
        yield p
    finally:
        p.shutdown(wait=True)


async def post(hub: Served, path: str, body: bytes) -> tuple[int, object]:
    async with hub.http.post(path, data=io.BytesIO(body), headers=MSGPACK) as r:
        return r.status, codec.unpack(await r.read(), canonical=False)


async def test_a_full_batch_of_records(
    serve: Callable[..., Awaitable[Served]], pool: Executor
) -> None:
    hub = await serve(pool=pool)
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    raws = [r.raw for r in chain(laptop, forms(5000))]  # max_batch
    with stalls_over_50_ms_fail():
        status, reply = await post(hub, "/v1/push", codec.pack({"records": raws}))
    assert status == 200 and reply["accepted"] == 5000  # type: ignore[index]


async def test_endorsements_up_to_the_limit_in_a_chain_sent_backwards(
    serve: Callable[..., Awaitable[Served]],
) -> None:
    """10,000 endorsements (max_endorsements): a pending hub vouches for a hub that vouches
    for the next, and so on, sent last link first. Before, the store took them in one pass per
    link, n² steps on the event loop. (The pending quota is raised so that all are taken.)"""
    hub = await serve(quotas=Quotas(pending_devices=20_000))
    top = Identity.generate()
    raw = enroll.make_request(top, hub.ident.public, "Hub", "hub", 1)
    assert (await post(hub, "/v1/enroll", raw))[0] == 200
    keys = [top] + [Identity.generate() for _ in range(10_000)]
    links = [enroll.endorse(a, b.public, f"hub {i}", "hub", 1)
             for i, (a, b) in enumerate(itertools.pairwise(keys))]  # fmt: skip
    body = codec.pack({"records": [], "endorsements": links[::-1]})
    del keys, links
    with stalls_over_50_ms_fail():
        status, reply = await post(hub, "/v1/push", body)
    assert status == 200, reply
    admitted = [d for d in hub.store.devices.values() if d.role == "hub"]
    assert len(admitted) == 10_001 and {d.state for d in admitted} == {"pending"}


@pytest.mark.parametrize(
    "junk",
    [
        {"records": [0] * 8_000_000},
        {"records": [], "x": [{}] * 8_000_000},
        {"records": [[0] * 10_000] * 1_600},
        [b"r"] * 5_000_000,
    ],
    ids=["8M-ints", "8M-maps-beside", "nested-16M", "5M-bins"],
)
async def test_a_body_of_millions_of_small_values(hub: Served, junk: object) -> None:
    """A 16 MiB body can hold millions of values: decoding them all took over a second on the
    loop (and as long again to free). It is refused (413) after a few thousand."""
    body = msgpack.packb(junk)
    assert len(body) <= 16 << 20
    with stalls_over_50_ms_fail():
        status, reply = await post(hub, "/v1/push", body)
    assert status == 413 and reply["error"]["code"] == "too_large", reply  # type: ignore[index]


async def test_heads_of_10_000_origins(hub: Served) -> None:
    origins = [os.urandom(32) for _ in range(10_000)]
    with stalls_over_50_ms_fail():
        status, reply = await post(hub, "/v1/heads", codec.pack({"origins": origins}))
    assert status == 200 and len(reply["heads"]) == 10_000  # type: ignore[index]


async def test_console_pages_after_a_start_compile_nothing_on_the_loop(hub: Served) -> None:
    """Jinja2 compiled each console template on its first request: ~100 ms of CPU on the loop
    for the room page, seen by CI. The templates are compiled at startup on a worker thread."""
    from hub.console.app import CONSOLE

    env = hub.http.app[CONSOLE].env

    def no_compiling(*_a: object, **_k: object) -> None:
        raise AssertionError("a template was compiled while a request was handled")

    env.compile = no_compiling  # type: ignore[assignment]
    laptop = Identity.generate()
    await hub.enrolled(laptop, approve=True)
    await hub.push([r.raw for r in chain(laptop, forms(3))])
    with stalls_over_50_ms_fail():
        for path in ("/", "/console/flags", "/console/progress", "/console/forks",
                     "/console/exports", "/console/part/devices",
                     "/console/part/conflicts"):  # fmt: skip
            async with hub.http.get(path) as r:
                assert r.status == 200, (path, await r.text())
