"""The loop-stall guard itself: it notices a callback that holds the loop, and names it."""

from __future__ import annotations

import asyncio
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
