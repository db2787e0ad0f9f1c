"""Double entry: the hub's work list (forms that need a second keying or a correction), the
hub's status of one form after a save, and how a blind keying compares with the hub's readings
(by digest: the numbers are never sent to this laptop)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from client.hublink import HubLink
from client.store import ClientStore
from hub.protocol import entry, worklist

from .drafts import Draft
from .errors import UiError
from .places import Places

NEEDS = ("second", "correction")


class DoubleEntry:
    def __init__(
        self,
        store: ClientStore,
        election: str,
        places: Places,
        http: Callable[[], aiohttp.ClientSession | None],
    ):
        self.store = store
        self.election = election
        self.places = places
        self._http = http

    async def _hub_link(self) -> HubLink:
        hub = await self.store.hub_info()
        http = self._http()
        if hub is None or http is None:
            raise UiError(
                "no hub yet: the work list comes from the hub once this laptop has synced",
                "belum ada hub: daftar kerja datang dari hub setelah laptop ini tersinkron",
                code="no_hub",
                status=503,
            )
        return HubLink(http, hub.url)

    async def _ask(self, q: str) -> dict[str, Any]:
        """``GET /v1/work?q`` of the hub; a hub that does not answer is a 503 for the page."""
        link = await self._hub_link()
        try:
            return await link.work(q)
        except Exception as exc:
            raise UiError(
                f"the hub did not answer: {exc}", f"hub tidak menjawab: {exc}",
                code="hub_unreachable", status=503,
            ) from None  # fmt: skip

    async def work(self, tps: str = "") -> dict[str, Any]:
        """The forms of this laptop's origin that need a second keying or a correction."""
        q = f"origin={self.store.identity.public.hex()}&election={self.election}&limit=200"
        if tps.isdigit():
            q += f"&tps={tps[:10]}"
        wl = await self._ask(q)

        def item(i: dict[str, Any], need: str) -> dict[str, Any]:
            return {
                "need": need,
                "form": i["form"],
                "tps": i["tps"],
                "status": i["status"],
                "place": self.places.info(i["tps"]).get("place", i["tps"]),
                "readings": len(i["live"]),
                "mine": sum(r.get("mine", 0) for r in i["live"]),
            }

        return {
            "second": [item(i, "second") for i in wl.get("second", [])],
            "correction": [item(i, "correction") for i in wl.get("correction", [])],
            "more": wl.get("more", {}),
        }

    async def readings(self, form: str, tps: str) -> dict[str, Any]:
        """What a blind keying of one form keeps in its draft: the hub's live readings (hash,
        digest of the numbers, whether this laptop signed it) and the form's status."""
        link = await self._hub_link()
        q = (
            f"origin={self.store.identity.public.hex()}&election={self.election}"
            f"&limit=0&key={form}:{tps}"
        )
        wl = await link.work(q)
        (k,) = wl["keys"]
        live = [
            {"hash": r["hash"].hex(), "digest": r["digest"].hex(), "mine": r.get("mine", 0)}
            for r in k["live"]
        ]
        return {"live": live, "status": k["status"]}

    async def key_status(self, form: str, tps: str, seq: int | None = None) -> dict[str, Any]:
        """The hub's double-entry status of one form (after a save: verified or conflict?);
        ``held``: whether entry ``seq`` of this laptop is one of its live readings yet."""
        wl = await self._ask(f"election={self.election}&limit=0&key={form}:{tps}")
        (k,) = wl["keys"]
        held = None
        if seq is not None:
            e = await self.store.get(seq)
            held = e is not None and any(r["hash"] == e.hash for r in k["live"])
        return {"status": k["status"], "readings": len(k["live"]), "held": held}


def _digest(parsed: dict[str, Any]) -> str:
    return worklist.digest(entry.numbers(parsed)).hex()


def verify(d: Draft, parsed: dict[str, Any]) -> dict[str, Any]:
    """For a second keying or a correction from the work list: does what was keyed agree
    with the hub's readings? (By digest: the numbers were never sent here.)"""
    readings = d.work.get("live") or []
    if d.mode not in NEEDS or not readings:
        return {}
    mine = _digest(parsed)
    agree = [r for r in readings if r.get("digest") == mine]
    return {"mode": d.mode, "agrees": len(agree), "readings": len(readings),
            "differs": not agree}  # fmt: skip


def correction_target(d: Draft, parsed: dict[str, Any]) -> str | None:
    """The reading a correction from the work list supersedes: the only one that
    disagrees with what was keyed now, when another one agrees (else None: the keying
    agrees with no reading, or several disagree; the coordinator decides)."""
    readings = d.work.get("live") or []
    mine = _digest(parsed)
    wrong = [r for r in readings if r.get("digest") != mine]
    if len(readings) - len(wrong) >= 1 and len(wrong) == 1:
        return str(wrong[0]["hash"])
    return None
