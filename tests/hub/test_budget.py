"""The bytes-in-flight budget gives big bodies' memory back: the C heap is trimmed once the
requests are gone, and bodies released while a trim runs get a trim of their own."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from hub import server

MB = 1024 * 1024


class Trims:
    """Stands in for ``malloc_trim`` (it runs on a worker thread): counts the calls; while
    ``gate`` is clear, a call waits for it, as a slow trim would."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> None:
        self.calls += 1
        self.started.set()
        self.gate.wait(10)


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> Trims:
    t = Trims()
    monkeypatch.setattr(server, "_malloc_trim", t)
    monkeypatch.setattr(server, "TRIM_DELAY", 0.05)
    return t


async def a_trim_running(trims: Trims) -> server.ByteBudget:
    """A budget whose trim (after 40 MB released) has started and waits for ``trims.gate``."""
    budget = server.ByteBudget(64 * MB, 5)
    trims.gate.clear()
    async with budget.hold(40 * MB):
        pass
    deadline = time.monotonic() + 10
    while not trims.started.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert trims.started.is_set()
    return budget


async def settle(trims: Trims, calls: int) -> None:
    """Wait (bounded) until ``calls`` trims ran, then a little more for any extra one."""
    deadline = time.monotonic() + 10
    while trims.calls < calls and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)


async def test_the_trim_comes_after_the_request_is_gone_not_at_its_release(
    trims: Trims, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "TRIM_DELAY", 1.0)
    budget = server.ByteBudget(64 * MB, 5)
    async with budget.hold(40 * MB):
        pass
    # The handler has returned, but its request (and body) lives until the answer is written:
    # a trim started at the release (on a worker thread) would have run well within this.
    await asyncio.sleep(0.3)
    assert trims.calls == 0
    await settle(trims, 1)
    assert trims.calls == 1
    budget.close()


async def test_bodies_released_while_a_trim_runs_are_trimmed_after_it(trims: Trims) -> None:
    budget = await a_trim_running(trims)
    async with budget.hold(40 * MB):  # the last big body, done while the trim runs
        pass
    trims.gate.set()
    await settle(trims, 2)
    assert trims.calls == 2
    budget.close()


async def test_small_bodies_do_not_trim_and_a_busy_budget_waits(trims: Trims) -> None:
    budget = server.ByteBudget(64 * MB, 5)
    async with budget.hold(1 * MB):
        pass
    await asyncio.sleep(0.3)
    assert trims.calls == 0
    async with budget.hold(40 * MB):
        async with budget.hold(1 * MB):
            pass
        await asyncio.sleep(0.3)  # released, but 40 MB are still in flight
        assert trims.calls == 0
    await settle(trims, 1)
    assert trims.calls == 1
    budget.close()


async def test_a_closed_budget_arms_no_trim_after_a_running_one(trims: Trims) -> None:
    budget = await a_trim_running(trims)
    async with budget.hold(40 * MB):  # released while the trim runs: would arm another
        pass
    budget.close()  # the app stops
    trims.gate.set()
    await settle(trims, 1)
    assert trims.calls == 1
    assert budget._trim_timer is None
