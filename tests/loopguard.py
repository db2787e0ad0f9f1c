"""The loop-stall guard (STYLE 14, as python-zeroconf's tests do): while a test runs, every
callback the event loop runs is timed, and the test fails if one blocked the loop too long.

Two limits, so that a slow or shared machine cannot fail a test that is right:

- CPU time of the loop's thread inside one callback over ``CPU_LIMIT_S`` (CPU-bound work on the
  loop: what this guard is for; CPU time does not grow when other processes load the machine);
- wall time inside one callback over ``WALL_LIMIT_S`` (blocking I/O or sleeping on the loop),
  generous (5 s) because wall time grows when a loaded machine deschedules the thread.

Only the product's own callbacks count: a task whose coroutine is defined under ``tests/`` (a
test function or fixture building its data on the loop) is the test's business, not the hub's,
and so are the callbacks of test tools that run a loop of their own (Playwright's sync API
waits for the browser inside its loop).
Request handlers, the store's writer, the forwarder, status derivation, discovery and every
other task or callback are watched.

Full garbage collections (generation 2) are not counted against the callback they land in:
their cost is that of everything the test process holds (pytest's collected tests, earlier
tests' data), not of the callback, and late in a run one took 400 ms inside a 20 ms callback.
Collections of the young generations are counted (they are bounded and follow the callback's
own allocations), and so is wall time, which includes every collection.

A test that must block the loop on purpose says so with ``@pytest.mark.allow_loop_stall``.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS_DIR = str(Path(__file__).resolve().parent) + "/"
CPU_LIMIT_S = 0.100
WALL_LIMIT_S = 5.0


@dataclass
class Stall:
    cpu_s: float
    wall_s: float
    callback: str


@dataclass
class _State:
    active: bool = False
    stalls: list[Stall] = field(default_factory=list)
    full_gc_s: float = 0.0  # CPU time of the main thread in full collections, in total
    full_gc_started: float | None = None


STATE = _State()
_original_run = asyncio.events.Handle._run


TOOLS = ("playwright.", "pytest_asyncio.")
TOOL_DIRS = ("/site-packages/playwright/", "/site-packages/pytest_asyncio/")


def _describe(handle: asyncio.Handle) -> str | None:
    """What ran, or None when it is a test's own task or a test tool's callback."""
    cb: Any = getattr(handle, "_callback", None)
    if str(getattr(cb, "__module__", "")).startswith(TOOLS):
        return None
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None)
        if code is not None and (
            code.co_filename.startswith(TESTS_DIR) or any(d in code.co_filename for d in TOOL_DIRS)
        ):
            return None
        where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
        return f"task {owner.get_name()} running {getattr(coro, '__qualname__', coro)}{where}"
    return repr(cb)


def _timed_run(self: asyncio.Handle) -> None:
    if not STATE.active or threading.current_thread() is not threading.main_thread():
        _original_run(self)
        return
    w0, c0, g0 = time.perf_counter(), time.thread_time(), STATE.full_gc_s
    try:
        _original_run(self)
    finally:
        cpu = time.thread_time() - c0 - (STATE.full_gc_s - g0)
        wall = time.perf_counter() - w0
        if cpu > CPU_LIMIT_S or wall > WALL_LIMIT_S:
            what = _describe(self)
            if what is not None:
                STATE.stalls.append(Stall(cpu, wall, what))


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if info["generation"] != 2 or threading.current_thread() is not threading.main_thread():
        return
    if phase == "start":
        STATE.full_gc_started = time.thread_time()
    elif STATE.full_gc_started is not None:
        STATE.full_gc_s += time.thread_time() - STATE.full_gc_started
        STATE.full_gc_started = None


def install() -> None:
    """Time every loop callback from now on (recording only while ``STATE.active``)."""
    asyncio.events.Handle._run = _timed_run  # type: ignore[method-assign]
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
