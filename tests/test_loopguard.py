"""The loop-stall guard itself: it notices a callback that holds the loop, and names it."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from tests import loopguard


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.mark.allow_loop_stall
def test_guard_records_a_callback_that_blocks_the_loop() -> None:
    async def main() -> None:
        asyncio.get_running_loop().call_soon(_spin, 0.15)
        await asyncio.sleep(0.01)

    loopguard.STATE.stalls.clear()
    loopguard.STATE.active = True
    try:
        asyncio.run(main())
    finally:
        loopguard.STATE.active = False
    stalls = list(loopguard.STATE.stalls)
    loopguard.STATE.stalls.clear()
    assert len(stalls) == 1
    assert stalls[0].cpu_s >= 0.15
    assert "_spin" in stalls[0].callback


@pytest.mark.allow_loop_stall
def test_guard_ignores_short_callbacks_and_the_tests_own_tasks() -> None:
    async def main() -> None:
        asyncio.get_running_loop().call_soon(_spin, 0.01)
        _spin(0.15)  # this test's own task: building data is the test's business
        await asyncio.sleep(0.01)

    loopguard.STATE.stalls.clear()
    loopguard.STATE.active = True
    try:
        asyncio.run(main())
    finally:
        loopguard.STATE.active = False
    assert loopguard.STATE.stalls == []


def _collect_a_big_heap(heap: list[object], then_spin: float) -> None:
    gc.collect()  # a full collection: it walks every object the process holds
    _spin(then_spin)


@pytest.mark.allow_loop_stall
@pytest.mark.parametrize("spin", [0.0, 0.15])
def test_full_collections_are_not_the_callbacks_cost(spin: float) -> None:
    """A full collection walks everything the test process holds, so the callback it lands in
    is not charged for it; the callback's own work still is."""
    heap: list[object] = [[i] for i in range(3_000_000)]  # ~3M containers to walk
    c0 = time.thread_time()
    gc.collect()
    assert time.thread_time() - c0 > 2 * loopguard.CPU_LIMIT_S  # the collection alone is over

    async def main() -> None:
        asyncio.get_running_loop().call_soon(_collect_a_big_heap, heap, spin)
        await asyncio.sleep(0.01)

    loopguard.STATE.stalls.clear()
    loopguard.STATE.active = True
    try:
        asyncio.run(main())
    finally:
        loopguard.STATE.active = False
    stalls = list(loopguard.STATE.stalls)
    loopguard.STATE.stalls.clear()
    heap.clear()
    if spin == 0.0:
        assert stalls == []
    else:
        assert len(stalls) == 1 and spin <= stalls[0].cpu_s < spin + loopguard.CPU_LIMIT_S
