"""One derived status for every viewer of the console (issue 11, "cheap for the hub").

``Live`` watches a few counters of the store that cost nothing to read (records stored,
commits, devices by state, forks, the upstream block). About once a second, and only while
someone watches (an open event stream, or a poll in the last ``WATCH_S`` seconds), it compares
them with what it saw last; only when they changed does it derive a fresh status. The result,
a ``Room``, is shared by every page, event stream and poll until the next change.

Deriving is incremental (``hub.console.tally.Tally``, on a worker thread): each time it takes
only the entries the store added since the last time, so a push costs work in proportion to
the push. The first derivation after a start takes every entry (seconds at 50,000), as does
the first after the store read its memory back (a failed commit replaces its list of facts).
It is still pure Python in the hub process, and each new room makes every open page redraw,
so while pushes keep committing the interval is at least ``BUSY_S`` and at least ``SLOWDOWN``
times the time the last derivation took (unless that one caught up with more than
``CATCH_UP`` entries: the first, or the first after nobody watched for a while), and at most
``MAX_GAP_S``: waiting longer would not save work, each entry is taken once and the next
derivation would only take more of them. Once pushes pause, the next tick derives.
The first status is derived when the app starts (on a big store ``FIRST_DELAY_S`` later, so
that the first pages after a restart are served first); a page does not wait for it on a big
store (a provisional room instead). A catch-up takes its entries in slices of ``CATCH_UP``
with the event loop alone for a moment between them.

Viewers wait on ``changed(after)``; nothing here is per viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hub import status as status_mod
from hub.memory import Facts
from hub.protocol import clock
from hub.service import HubService

from .tally import Tally

log = logging.getLogger(__name__)

INTERVAL_S = 1.0  # at most one derivation a second
FIRST_WAIT_S = 0.5  # a page waits this long for the first derivation, then is provisional
QUICK_S = 0.5  # a page waits for a fresh derivation when the last one took this or less,
SMALL_STORE = 20_000  # ... or when the hub holds this many records or fewer
SLOWDOWN = 20.0  # ... and at most one every SLOWDOWN x the time the last one took (<= 5%)
BUSY_S = 3.0  # ... and at most one every BUSY_S (every page redraws its counts each time)
MAX_GAP_S = 10.0  # ... but at least one every MAX_GAP_S while pushes go on
CATCH_UP = 5_000  # a derivation that took more new entries than this does not set the pace,
SLICE_REST_S = 0.02  # ... and takes them in slices of this many, resting this long between
FIRST_DELAY_S = 1.0  # a big store's first tally starts this long after the start
WATCH_S = 30.0  # a poll keeps the status fresh this long
RATE_WINDOW_S = 120.0  # upstream's confirmation rate is measured over this window

COUNT_KEYS = ("accepted", "held", "single", "verified", "conflict", "forks", "backlog")


def counts_of(s: dict[str, Any]) -> dict[str, int | None]:
    """The headline counts under the keys of ``c1hub status --json`` (docs/json-output.md):
    ``entries.accepted``, ``entries.held``, ``tps.single|verified|conflict``, ``forks`` and
    ``upstream.backlog``; and ``forks_unapproved`` (forks of keys never approved, shown apart
    only when there are some)."""
    up = s.get("upstream") or {}
    return {
        "accepted": s["entries"]["accepted"],
        "held": s["entries"]["held"],
        "single": s["tps"]["single"],
        "verified": s["tps"]["verified"],
        "conflict": s["tps"]["conflict"],
        "forks": s["forks"],
        "backlog": up.get("backlog") or 0,
        "forks_unapproved": s.get("forks_unapproved", 0),
    }


def _rev(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Room:
    """One derived status and what the page needs from it (shared, never changed)."""

    version: int
    status: dict[str, Any]
    eta_s: float | None
    derived_in_s: float
    at: float  # monotonic time the derivation ended
    devices_rev: str = ""
    conflicts_rev: str = ""
    wire: dict[str, Any] = field(default_factory=dict)  # what events and polls carry
    event: bytes = b""  # ``wire`` as one server-sent event, encoded once for every stream
    epoch: str = ""

    @classmethod
    def make(
        cls, version: int, s: dict[str, Any], eta: float | None, took: float, epoch: str
    ) -> Room:
        """The room of one derived status (``took`` seconds to derive)."""
        devices = [(d["id"], d["state"], d["forked"], d["name"]) for d in s["device_list"]]
        entries = [(d["entries"], d["last_seen"]) for d in s["device_list"]]
        conflicts = [(c["form"], c["tps"], c["live"]) for c in s["conflicts"]]
        up = dict(s.get("upstream") or {"state": "none"})
        up.pop("rejections", None)
        pending = [
            {k: d[k] for k in ("id", "name", "role", "code")}
            for d in s["device_list"]
            if d["state"] == "pending"
        ][:50]
        dev_rev, con_rev, ent_rev = _rev(devices), _rev(conflicts), _rev(entries)
        wire = {
            "v": version,
            "epoch": epoch,
            "now": s["now"],
            "counts": counts_of(s),
            "devices": s["devices"],
            "pending": pending,
            "devices_rev": dev_rev,
            "entries_rev": ent_rev,
            "conflicts_rev": con_rev,
            "upstream": up,
            "eta_s": eta,
            "flags": s["flags"],
        }
        event = b"data: " + json.dumps(wire).encode() + b"\n\n"
        return cls(version, s, eta, took, time.monotonic(), dev_rev, con_rev, wire, event, epoch)


class Live:
    """The shared derived status (see the module docstring)."""

    def __init__(self, service: HubService, interval: float = INTERVAL_S):
        self.service = service
        self.interval = interval
        self.room: Room | None = None
        self.viewers = 0
        self.derivations = 0
        self._watched_until = 0.0
        self._key: tuple[Any, ...] | None = None
        self._cond = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._confirmed: deque[tuple[float, int]] = deque()
        self._lock = asyncio.Lock()
        self._first: asyncio.Future[None] | None = None
        self._tally: Tally | None = None  # kept up to date from the store's facts
        self._facts: Sequence[Facts] | None = None  # the list it follows (replaced: start over)
        self._seen = 0  # how many of them it took
        self._pace = 0.0  # seconds the last derivation took, unless it was a catch-up
        self.epoch = secrets.token_hex(4)  # this run of the hub: a restart voids old pages

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="console-live")

    async def stop(self) -> None:
        self._closed = True
        if self._first is not None and not self._first.done():
            self._first.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._first
        async with self._cond:
            self._cond.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def closed(self) -> bool:
        return self._closed

    # -- for viewers -------------------------------------------------------------------------

    def watched(self) -> None:
        """A poll or a page: keep deriving for the next ``WATCH_S`` seconds."""
        self._watched_until = time.monotonic() + WATCH_S

    async def current(self, fresh: bool = True) -> Room:
        """The shared room. Asked ``fresh`` (a page opened) and stale, it is derived again
        first when that is quick (the last derivation took at most ``QUICK_S``, or the store
        is small); otherwise the page shows the last one and the ticker brings the new one.
        What follows the ticker (a page's fragments after an event, polls) asks not
        ``fresh``: deriving for those would bypass the ticker's pace while pushes
        commit, once per open page. Until the first derivation after the start is done
        (waited for ``FIRST_WAIT_S``), a provisional room of what costs nothing (devices,
        upstream)."""
        self.watched()
        small = self.service.sqlite_store().records_stored <= SMALL_STORE
        if self.room is None:
            if self._first is None and (small or self._task is None):  # else the ticker does
                self._first = asyncio.ensure_future(self.refresh())
            if small and self._first is not None:  # derived by then (a big store: no wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._first), FIRST_WAIT_S)
        if self.room is None:
            return Room.make(0, self._cheap_status(), None, 0.0, self.epoch)
        quick = self._pace <= QUICK_S or small
        if fresh and quick and self._key != self._change_key():
            await self.refresh()
        return self.room

    def _cheap_status(self) -> dict[str, Any]:
        """The status keys the room view reads, without anything derived from the entries
        (those are None: the page shows "…" until the first derivation arrives)."""
        svc = self.service
        view = svc.sqlite_store().snapshot()
        s: dict[str, Any] = {
            "node_id": svc.ident.node_id, "name": svc.name, "role": svc.role,
            "now": time.time(), "provisional": True,
            "entries": {"accepted": None, "held": None, "total": svc.sqlite_store().records_stored},
            "tps": {"single": None, "verified": None, "conflict": None}, "tps_by_form": {},
            "flags": {}, **status_mod.device_part(view, svc.ident.public),
            "conflicts": [], "scan_reuse": [], "users_mismatch": [],
        }  # fmt: skip
        up = svc.upstream_block()
        if up is not None:
            s["upstream"] = up
        return s

    async def changed(self, after: int, timeout: float) -> Room | None:
        """The room once its version is over ``after`` (None on timeout or when closing)."""
        async with self._cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._cond.wait_for(
                        lambda: (
                            self._closed or (self.room is not None and self.room.version > after)
                        )
                    ),
                    timeout,
                )
        if self._closed or self.room is None or self.room.version <= after:
            return None
        return self.room

    async def refresh(self) -> None:
        """Derive now (after a coordinator's action, or when asked with nothing fresh); a
        caller that waited for another's derivation of the same state takes that one."""
        async with self._lock:
            key = self._change_key()
            if self.room is not None and key == self._key:
                return
            t0 = time.monotonic()
            s, taken = await self._derive()
            took = time.monotonic() - t0
            self._pace = took if taken <= CATCH_UP else 0.0
            self.derivations += 1
            version = (self.room.version if self.room else 0) + 1
            self.room = Room.make(version, s, self._eta(s), took, self.epoch)
            self._key = key
        async with self._cond:
            self._cond.notify_all()

    async def _derive(self) -> tuple[dict[str, Any], int]:
        """The status now: the tally updated with the entries stored since the last time, on
        a worker thread (every entry the first time, or after the store read its memory
        back); and how many entries that took. A root's status (totals per region) is
        derived whole."""
        svc = self.service
        store = svc.sqlite()
        if store is None or svc.root:
            return await svc.fresh_status(), store.records_stored if store else 0
        facts = store.facts
        if self._tally is None or facts is not self._facts:  # first, or memory read back
            self._tally, self._facts, self._seen = Tally(svc.master), facts, 0
        tally = self._tally
        view = store.snapshot()
        new = view.facts[self._seen :]
        n = svc.node_info()
        try:
            done = 0
            while len(new) - done > CATCH_UP:  # a long catch-up in slices, with the loop
                part = new[done : done + CATCH_UP]  # alone between them (pages, pushes)
                await asyncio.to_thread(tally.update, view.devices_by_id, part)
                done += len(part)
                await asyncio.sleep(SLICE_REST_S)
            s = await asyncio.to_thread(
                tally.status, view, new[done:], node_id=n.node_id, name=n.name, role=n.role,
                hub_public=n.public, now=clock.now(),
            )  # fmt: skip
        except BaseException:
            self._tally = None  # maybe half updated: start again from every entry
            raise
        self._seen = len(view.facts)
        return svc.finish_status(s), len(new)

    # -- the ticker --------------------------------------------------------------------------

    def _change_key(self) -> tuple[Any, ...]:
        store = self.service.sqlite_store()
        states: dict[str, int] = {}
        for d in store.devices.values():
            states[d.state] = states.get(d.state, 0) + 1
        forked = sum(1 for d in store.devices.values() if d.forked)
        up = self.service.upstream.status() if self.service.upstream is not None else {}
        scans = self.service.scans
        held = (len(scans.held), len(scans.upstream)) if scans is not None else ()
        return (
            held,
            store.records_stored, store.commits, len(store.devices), tuple(sorted(states.items())),
            forked, store.fork_count, up.get("state"), up.get("backlog"), up.get("confirmed"),
            up.get("rejected"), up.get("enrollment"),
        )  # fmt: skip

    def _eta(self, s: dict[str, Any]) -> float | None:
        """Seconds until upstream holds the backlog at the rate it confirmed lately."""
        up = s.get("upstream") or {}
        backlog, confirmed = up.get("backlog"), up.get("confirmed")
        if not backlog or confirmed is None:
            return None
        now = time.monotonic()
        seen = self._confirmed
        seen.append((now, int(confirmed)))
        while seen and now - seen[0][0] > RATE_WINDOW_S:
            seen.popleft()
        t0, c0 = seen[0]
        if now - t0 < 2 or confirmed <= c0:
            return None
        return float(backlog) / ((int(confirmed) - c0) / (now - t0))

    async def _run(self) -> None:
        # Derive once at start, so the first page does not wait; on a big store a moment
        # later, so that the first pages after a restart are served before the first tally.
        if self.service.sqlite_store().records_stored > SMALL_STORE:
            await asyncio.sleep(FIRST_DELAY_S)
        if self._first is None:
            self._first = asyncio.ensure_future(self.refresh())
        try:
            await self._first
        except Exception:
            log.exception("console: deriving the status failed")
        commits = self.service.sqlite_store().commits
        while not self._closed:
            await asyncio.sleep(self.interval)
            if self.viewers == 0 and time.monotonic() > self._watched_until:
                continue
            if self._key == self._change_key():
                continue
            # While pushes commit, derive at most every BUSY_S or SLOWDOWN x the last
            # derivation's time (at least every MAX_GAP_S); once they pause (no commit since
            # the last tick), now.
            now_commits = self.service.sqlite_store().commits
            busy, commits = now_commits != commits, now_commits
            room = self.room
            wait = max(BUSY_S, min(SLOWDOWN * self._pace, MAX_GAP_S))
            if busy and room is not None and time.monotonic() - room.at < wait:
                continue
            try:
                await self.refresh()
            except Exception:  # the next tick tries again; the page shows the last status
                log.exception("console: deriving the status failed")
