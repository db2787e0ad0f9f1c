"""The connection panel and the operator's pace: what the background sync last said, this
laptop's counts, the hub's own word on its upstream, and forms per hour this session."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from client.store import ClientStore
from client.sync import SyncReport
from hub.protocol import clock

from .drafts import UiStore

UPSTREAM_MAX_AGE = 10.0


@dataclass(slots=True)
class SyncState:
    """What the background sync last said (``c1client sync``'s own reports)."""

    last_report: SyncReport | None = None
    last_ok_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    running: bool = False


class Connection:
    def __init__(
        self,
        store: ClientStore,
        ui: UiStore,
        http: Callable[[], aiohttp.ClientSession | None],
        *,
        running: bool,
        now: Callable[[], float],
    ):
        self.store = store
        self.ui = ui
        self.now = now
        self.sync = SyncState(running=running)
        self._http = http
        self._upstream: tuple[float, dict[str, Any] | None] = (0.0, None)

    def on_sync_report(self, rep: SyncReport) -> None:
        self.sync.last_report = rep
        self.sync.last_ok_at = self.now()
        self.sync.last_error = None

    def on_sync_error(self, reason: str, delay: float) -> None:
        self.sync.last_error = reason
        self.sync.last_error_at = self.now()

    async def panel(self) -> dict[str, Any]:
        """The connection panel: this laptop, its hub, its counts, the sync, the upstream."""
        s = await self.store.summary()
        rep = self.sync.last_report
        hub = s.hub
        found_by = rep.found_by.get(hub.url) if rep is not None and hub is not None else None
        return {
            "node_id": s.node_id,
            "laptop": s.name,
            "hub": None
            if hub is None
            else {
                "id": hub.node_id,
                "url": hub.url,
                "state": hub.state,
                "code": hub.code,
                "last_ok_at": hub.last_ok_at,
                "found_by": found_by,
            },
            "counts": {
                "entries": s.entries,
                "local": s.local_only,
                "at_hub": s.at_hub,
                "confirmed": s.confirmed_upstream,
                "oldest_local_at": s.oldest_local_entered_at,
            },
            "sync": {
                "running": self.sync.running,
                "last_ok_at": self.sync.last_ok_at,
                "last_error": self.sync.last_error,
                "last_error_at": self.sync.last_error_at,
            },
            "upstream": await self._upstream_state(hub.url if hub else None),
        }

    async def _upstream_state(self, url: str | None) -> dict[str, Any] | None:
        """The hub's own word on its upstream (``GET /v1/status``), at most every 10 s."""
        at, cached = self._upstream
        http = self._http()
        if url is None or http is None:
            return None
        if clock.monotonic() - at < UPSTREAM_MAX_AGE:
            return cached
        got: dict[str, Any] | None = None
        with contextlib.suppress(Exception):
            async with http.get(
                url.rstrip("/") + "/v1/status", timeout=aiohttp.ClientTimeout(total=3)
            ) as r:
                if r.status == 200:
                    up = (await r.json()).get("upstream")
                    if isinstance(up, dict):
                        got = {k: up.get(k) for k in ("state", "backlog", "oldest_age_s",
                                                       "confirmed", "rejected")}  # fmt: skip
        self._upstream = (clock.monotonic(), got)
        return got

    async def pace(self, session: str | None, operator: str | None) -> dict[str, Any]:
        """The operator's pace in ``session`` (since sign-in)."""
        if not session:
            return {"forms": 0}
        saves = await self.ui.saves(session)
        started = await self.ui.session_started(session) or self.now()
        hours = max((self.now() - started) / 3600, 1e-9)
        keys = sum(s.keystrokes for s in saves)
        refused = sum(s.refused for s in saves)
        n = len(saves)
        typing = [s.saved_at - s.started_at for s in saves]
        return {
            "operator": operator,
            "since": started,
            "forms": n,
            "forms_per_hour": round(n / hours, 1),
            "keystrokes_per_form": round(keys / n, 1) if n else None,
            "keystrokes_per_hour": round(keys / hours),
            "seconds_per_form": round(sum(typing) / n, 1) if n else None,
            "flag_rate": round(sum(s.flagged for s in saves) / n, 3) if n else None,
            "refused_per_1000": round(1000 * refused / keys, 1) if keys else None,
        }
