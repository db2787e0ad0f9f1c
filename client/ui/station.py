"""The operator's station: what the page asks for, on top of the laptop's store.

Saving calls ``client.intake.enter_items``, the very code ``c1client enter`` runs (parse, rules,
R11 rejection, the same-numbers check, signing and the durable commit in ``client.store``): the
page cannot sign anything another way. A draft is saved at most once: saves run one at a time
(``_save_lock``), a draft already saved answers with its entry's seq, and a save retried after
a crash between the commit and the draft's update is recognised by the store's own
same-numbers check (``ClientStore.same_entries``) and answered with the seq already signed.

Live checks (``check``) store the draft and return the flags ``cells.live_flags`` derives from
``hub.protocol.rules``. Nothing here re-implements a rule.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from client.hublink import HubLink
from client.intake import Collect, Item, check_item, enter_items
from client.store import AT_HUB, CONFIRMED, LOCAL, ClientStore
from client.sync import SyncReport
from hub.protocol import clock, entry, record, rules, worklist
from hub.protocol.wilayah import Master
from hub.shared.blobs import BlobInfo, BlobStore

from . import cells as cells_mod
from . import layout
from .config import UiConfig
from .drafts import DISCARDED, OPEN, SAVED, Draft, SaveRow, UiStore
from .errors import NotFound, UiError

log = logging.getLogger(__name__)

MODES = ("new", "second", "correction", "koreksi")
MAX_INBOX = 200
UPSTREAM_MAX_AGE = 10.0


@dataclass(slots=True)
class SyncState:
    """What the background sync last said (``c1client sync``'s own reports)."""

    last_report: SyncReport | None = None
    last_ok_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    running: bool = False


@dataclass(slots=True)
class _TpsIndex:
    """Kelurahan for type-ahead: (desa code, lower-case search text), codes sorted, and the
    number of TPS of each kelurahan."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class Station:
    def __init__(
        self,
        cfg: UiConfig,
        store: ClientStore,
        ui: UiStore,
        blobs: BlobStore,
        master: Master | None,
        *,
        now: Callable[[], float] = clock.now,
    ):
        self.cfg = cfg
        self.store = store
        self.ui = ui
        self.blobs = blobs
        self.master = master
        self.now = now
        self.lang = cfg.client.lang
        self.operator: str | None = None
        self.session: str | None = None
        self.sync = SyncState(running=cfg.sync)
        self._save_lock = asyncio.Lock()
        self._bodies: dict[int, dict[str, Any]] = {}
        self._index: _TpsIndex | None = None
        self._http: aiohttp.ClientSession | None = None
        self._upstream: tuple[float, dict[str, Any] | None] = (0.0, None)
        self._kinds: dict[str, tuple[str, str]] = {}  # draft id -> (form, tps): never change

    async def start(self) -> None:
        lang = await self.ui.pref("lang")
        if lang in ("id", "en") and self.cfg.client.lang == "id" and lang != self.lang:
            self.lang = lang  # the page's toggle wins over the default, not over --lang en
        if self.cfg.operator:
            await self.sign_in(self.cfg.operator)
        else:
            self.operator = await self.ui.pref("operator")
            self.session = await self.ui.pref("session")
        self.blobs.clean_tmp()
        if self.master is not None:
            await asyncio.to_thread(self._tps_index)  # type-ahead answers at once from now on
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def t(self, id_: str, en: str) -> str:
        return id_ if self.lang == "id" else en

    # -- sign-in, language --------------------------------------------------------------------

    async def sign_in(self, name: str) -> dict[str, Any]:
        name = " ".join(name.split())
        if not name or len(name) > entry.MAX_OPERATOR:
            raise UiError(
                f"type your name (1..{entry.MAX_OPERATOR} characters)",
                f"ketik nama Anda (1..{entry.MAX_OPERATOR} karakter)",
                code="bad_operator",
                field="operator",
            )
        self.operator = name
        self.session = await self.ui.sign_in(name, self.now())
        log.info("operator %r signed in", name)
        return await self.state()

    async def sign_out(self) -> None:
        self.operator = self.session = None
        await self.ui.set_pref("operator", None)
        await self.ui.set_pref("session", None)

    async def set_lang(self, lang: str) -> None:
        if lang not in ("id", "en"):
            raise UiError("language is id or en", "bahasa: id atau en", code="bad_lang")
        self.lang = lang
        await self.ui.set_pref("lang", lang)

    def _need_operator(self) -> str:
        if not self.operator:
            raise UiError(
                "sign in with your name first",
                "masuk dengan nama Anda dulu",
                code="no_operator",
                field="operator",
                status=409,
            )
        return self.operator

    async def state(self) -> dict[str, Any]:
        """What a (re)loaded page needs: who, the open draft, preferences."""
        draft = await self.ui.current(self.operator) if self.operator else None
        return {
            "operator": self.operator,
            "lang": self.lang,
            "node_id": self.store.node_id,
            "laptop": self.store.name,
            "master": self.master is not None,
            "scans_dir": str(self.cfg.scans_dir) if self.cfg.scans_dir else None,
            "auto_advance": (await self.ui.pref("auto_advance")) == "1",
            "draft": await self._draft_view(draft) if draft else None,
        }

    async def set_pref(self, key: str, value: str) -> None:
        if key != "auto_advance" or value not in ("0", "1"):
            raise UiError("unknown preference", "preferensi tidak dikenal", code="bad_pref")
        await self.ui.set_pref(key, value)

    # -- TPS: codes, names, type-ahead --------------------------------------------------------

    def tps_info(self, tps: str) -> dict[str, Any]:
        """The place of a TPS code: names from the master, whether it exists."""
        out: dict[str, Any] = {"tps": tps, "valid": len(tps) == 13 and tps.isdigit()}
        if not out["valid"]:
            return out
        m = self.master
        names = [m.names.get(tps[:n]) if m else None for n in (2, 4, 6, 10)]
        out.update(
            {
                "province": names[0],
                "kabko": names[1],
                "kecamatan": names[2],
                "kelurahan": names[3],
                "number": int(tps[10:]),
                "exists": m.tps_exists(tps) if m else None,
                "place": " / ".join(n or c for n, c in zip(names, (tps[:2], tps[:4], tps[:6],
                                                                    tps[:10]), strict=True))
                + f" / TPS {tps[10:]}",
            }
        )  # fmt: skip
        return out

    def _tps_index(self) -> _TpsIndex:
        if self._index is None:
            idx = _TpsIndex()
            if self.master is not None:
                n = self.master.names
                for code in self.master.tps_codes(special=True):
                    idx.counts[code[:10]] = idx.counts.get(code[:10], 0) + 1
                idx.codes = self.master.desa_codes()
                for desa in idx.codes:
                    text = " ".join(
                        n.get(desa[:k], "") for k in (10, 6, 4, 2)
                    ).lower()  # kelurahan, kecamatan, kab/kota, province
                    idx.rows.append((desa, text))
            self._index = idx
        return self._index

    def search_tps(self, q: str, limit: int = 12) -> list[dict[str, Any]]:
        """Type-ahead: kelurahan whose names (with kecamatan, kab/kota, province) contain every
        word of ``q``; digits: codes starting with ``q``."""
        q = q.strip().lower()
        if not q or self.master is None:
            return []
        out: list[str] = []
        idx = self._tps_index()
        if q.isdigit():
            at = bisect.bisect_left(idx.codes, q[:10])
            for desa in idx.codes[at : at + limit]:
                if not desa.startswith(q[:10]):
                    break
                out.append(desa)
        else:
            words = q.split()
            ranked: list[tuple[int, str]] = []
            for desa, text in idx.rows:
                if all(w in text for w in words):
                    kel = self.master.names.get(desa, "").lower()
                    rank = 0 if kel == q else 1 if kel.startswith(q) else 2
                    ranked.append((rank, desa))
            ranked.sort()
            out = [d for _, d in ranked[:limit]]
        n = self.master.names
        return [
            {
                "desa": d,
                "kelurahan": n.get(d, d),
                "kecamatan": n.get(d[:6], d[:6]),
                "kabko": n.get(d[:4], d[:4]),
                "province": n.get(d[:2], d[:2]),
                "tps_count": idx.counts.get(d, 0),
            }
            for d in out
        ]

    def next_tps(self, tps: str) -> str:
        """The next TPS of the same kelurahan (the same code when there is none)."""
        n = int(tps[10:]) + 1
        nxt = f"{tps[:10]}{n:03d}" if n <= 999 else tps
        if self.master is not None and not self.master.tps_exists(nxt):
            return tps
        return nxt

    def _check_start(self, form: str, tps: str) -> None:
        if form not in entry.FORMS:
            raise UiError(
                f"choose a form type ({', '.join(entry.FORMS)})",
                f"pilih jenis formulir ({', '.join(entry.FORMS)})",
                code="bad_form",
                field="form",
            )
        if len(tps) != 13 or not tps.isdigit():
            raise UiError(
                f"a TPS code is 13 digits (10-digit kelurahan + 3-digit TPS), not {tps!r}",
                f"kode TPS 13 angka (10 angka kelurahan + 3 angka TPS), bukan {tps!r}",
                code="bad_tps",
                field="tps",
            )
        if self.master is not None and not self.master.tps_exists(tps):
            raise UiError(
                f"TPS {tps} is not in the polling-station master: check the code on the form",
                f"TPS {tps} tidak terdaftar di data wilayah: periksa kode di formulir",
                code="unknown_tps",
                field="tps",
            )
        if not rules.form_allowed(form, tps):
            raise UiError(
                f"{form} is not contested in province {tps[:2]}",
                f"{form} tidak ada di provinsi {tps[:2]}",
                code="form_not_contested",
                field="form",
            )

    # -- drafts -------------------------------------------------------------------------------

    async def _draft_view(self, d: Draft) -> dict[str, Any]:
        rows = layout.clean_rows(d.form, d.tps, d.rows)
        return {
            "id": d.id,
            "form": d.form,
            "tps": d.tps,
            "place": self.tps_info(d.tps),
            "mode": d.mode,
            "supersedes": d.supersedes,
            "supersedes_seq": d.work.get("supersedes_seq"),
            "cells": d.cells,
            "rows": rows,
            "scans": [self._scan_view(h) for h in d.scans],
            "note": d.note,
            "rev": d.rev,
            "keystrokes": d.keystrokes,
            "refused": d.refused,
            "state": d.state,
            "seq": d.seq,
            "layout": layout.spec(d.form, d.tps, rows, self.lang),
            "flags": [f.to_dict() for f in self._live(d.form, d.tps, rows, d.cells)],
            "started_at": d.created_at,
        }

    def _scan_view(self, digest: str) -> dict[str, Any]:
        info = self.blobs.info(digest) if self.blobs.has(digest) else None
        return {
            "hash": digest,
            "kind": info.kind if info else None,
            "size": info.size if info else None,
            "held": info is not None,
        }

    def _live(
        self, form: str, tps: str, rows: dict[str, Any], cells: dict[str, str]
    ) -> list[rules.Flag]:
        try:
            return cells_mod.live_flags(form, tps, rows, cells, self.master)
        except cells_mod.CellError:
            return []

    async def existing(self, form: str, tps: str) -> list[int]:
        """Seqs of this laptop's live entries for (election, form, tps)."""
        out, dead = [], set()
        async for e in self.store.entries():
            if e.form != form or e.tps != tps or e.election != self.cfg.election:
                continue
            body = self._body(e.seq, e.raw)
            if body.get("supersedes"):
                dead.add(body["supersedes"])
            out.append((e.seq, e.hash.hex()))
        return [s for s, h in out if h not in dead]

    async def new_draft(
        self,
        form: str,
        tps: str,
        *,
        mode: str = "new",
        supersedes: str | None = None,
        work: dict[str, Any] | None = None,
        cells: dict[str, str] | None = None,
        rows: dict[str, Any] | None = None,
        scans: list[str] | None = None,
        force: bool = False,
    ) -> dict[str, Any]:
        """Start a form. An open draft of this operator that nothing was typed into is
        discarded; one with numbers is kept (it stays in the list of drafts)."""
        operator = self._need_operator()
        self._check_start(form, tps)
        if mode not in MODES:
            raise UiError("unknown mode", "mode tidak dikenal", code="bad_mode")
        if mode == "new" and not force:
            seqs = await self.existing(form, tps)
            if seqs:
                raise UiError(
                    f"this laptop already holds {form} of TPS {tps} as #{seqs[-1]}: use Koreksi "
                    "to correct it, or press Enter again to key a new reading",
                    f"{form} TPS {tps} sudah tersimpan di laptop ini sebagai #{seqs[-1]}: pakai "
                    "Koreksi untuk membetulkannya, atau tekan Enter lagi untuk entri baru",
                    code="already_entered",
                    field="tps",
                    status=409,
                    extra={"seq": seqs[-1]},
                )
        old = await self.ui.current(operator)
        if old is not None and not any(old.cells.values()) and not old.scans:
            await self.ui.finish(old.id, DISCARDED, None, self.now())
        elif old is not None:
            raise UiError(
                f"draft {old.form} TPS {old.tps} is not saved: save it (Ctrl+Enter) or discard "
                "it (Ctrl+Delete) first",
                f"draf {old.form} TPS {old.tps} belum disimpan: simpan (Ctrl+Enter) atau buang "
                "(Ctrl+Delete) dulu",
                code="open_draft",
                field="tps",
                status=409,
                extra={"draft": old.id},
            )
        if rows is None:
            rows = await self.ui.layout(form, tps) or layout.default_rows(form, tps)
        d = Draft(
            id="",
            operator=operator,
            form=form,
            tps=tps,
            mode=mode,
            supersedes=supersedes,
            work=work or {},
            cells=cells or {},
            rows=layout.clean_rows(form, tps, rows),
            scans=scans or [],
        )
        d = await self.ui.create(d, self.now())
        self._kinds[d.id] = (d.form, d.tps)
        log.info("draft %s: %s TPS %s (%s)", d.id, form, tps, mode)
        return await self._draft_view(d)

    async def _open_draft(self, draft_id: str) -> Draft:
        d = await self.ui.get(draft_id)
        if d is None:
            raise NotFound(f"no draft {draft_id}", f"draf {draft_id} tidak ada")
        self._kinds[d.id] = (d.form, d.tps)
        return d

    async def open_draft(self, draft_id: str) -> dict[str, Any]:
        return await self._draft_view(await self._open_draft(draft_id))

    async def drafts(self) -> list[dict[str, Any]]:
        """Open drafts of the operator, newest first (a form left half-typed)."""
        op = self._need_operator()
        out = []
        d = await self.ui.current(op)
        if d is not None:
            out.append({"id": d.id, "form": d.form, "tps": d.tps, "updated_at": d.updated_at})
        return out

    def _cells(self, raw: Any) -> dict[str, str]:
        if not isinstance(raw, dict) or len(raw) > 8000:
            raise UiError("bad cells", "isian tidak sah", code="bad_cells")
        out = {}
        for k, v in raw.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise UiError("bad cells", "isian tidak sah", code="bad_cells")
            try:
                cells_mod.value(k, v)
            except cells_mod.CellError:
                raise UiError(
                    f"{k}: only digits, 0..999 (three boxes)",
                    f"{k}: hanya angka, 0..999 (tiga kotak)",
                    code="bad_cell",
                    field=k,
                ) from None
            if v:
                out[k] = v
        return out

    async def check(
        self,
        draft_id: str,
        *,
        rev: int,
        cells: Any,
        rows: Any,
        keystrokes: int = 0,
        refused: int = 0,
    ) -> dict[str, Any]:
        """Keep the draft as typed, and return the flags the filled cells already decide.
        One write to ``ui.db`` per call (this runs at every keystroke)."""
        kind = self._kinds.get(draft_id)
        if kind is None:
            d = await self._open_draft(draft_id)
            kind = (d.form, d.tps)
        form, tps = kind
        clean = self._cells(cells)
        rows_c = layout.clean_rows(form, tps, rows)
        is_open = await self.ui.update(
            draft_id, rev=rev, cells=clean, rows=rows_c, keystrokes=keystrokes,
            refused=refused, now=self.now(),
        )  # fmt: skip
        flags = self._live(form, tps, rows_c, clean)
        out: dict[str, Any] = {"rev": rev, "open": is_open, "state": OPEN, "seq": None,
                               "flags": [f.to_dict() for f in flags]}  # fmt: skip
        if not is_open:
            d = await self._open_draft(draft_id)
            out.update(state=d.state, seq=d.seq)
        return out

    async def discard(self, draft_id: str) -> None:
        d = await self._open_draft(draft_id)
        if d.state == OPEN:
            await self.ui.finish(draft_id, DISCARDED, None, self.now())

    # -- saving -------------------------------------------------------------------------------

    async def save(
        self,
        draft_id: str,
        *,
        rev: int,
        cells: Any,
        rows: Any,
        confirm: bool,
        note: str,
        keystrokes: int = 0,
        refused: int = 0,
    ) -> dict[str, Any]:
        """Sign and commit the draft as an entry, exactly as ``c1client enter`` does.

        Answers ``{"need_confirm": true, "flags": [...]}`` when the form has flags (or differs
        from the reading it double-checks) and ``confirm`` is false; ``{"seq": N, ...}`` once
        saved (also when it was saved before: a double key press, another tab, a retry).
        """
        async with self._save_lock:
            d = await self._open_draft(draft_id)
            if d.state == SAVED and d.seq is not None:
                return await self._saved_reply(d, d.seq, again=True)
            if d.state != OPEN:
                raise UiError(
                    "this form was discarded; start it again",
                    "formulir ini sudah dibuang; mulai lagi",
                    code="discarded",
                    status=409,
                )
            operator = self._need_operator()
            clean = self._cells(cells)
            rows_c = layout.clean_rows(d.form, d.tps, rows)
            await self.ui.update(
                draft_id, rev=rev, cells=clean, rows=rows_c, keystrokes=keystrokes,
                refused=refused, now=self.now(),
            )  # fmt: skip
            missing = cells_mod.empty_cell(d.form, rows_c, clean)
            if missing is not None:
                raise UiError(
                    f"{missing} is empty: type the number on the form (0 if it says zero)",
                    f"{missing} masih kosong: ketik angka di formulir (0 bila nol)",
                    code="empty_cell",
                    field=missing,
                )
            if len(note) > entry.MAX_NOTE:
                raise UiError("note too long", "catatan terlalu panjang", field="note")
            obj = cells_mod.build(
                d.form, d.tps, rows_c, clean, election=self.cfg.election, operator=operator,
                note=note.strip(), scans=d.scans, supersedes=d.supersedes,
            )  # fmt: skip
            item = Item("ui", 0, None, value=obj)
            parsed, flags = self._checked(item)
            verify = self._verify(d, parsed)
            if d.mode == "correction":
                target = self._correction_target(d, parsed)
                verify["supersedes"] = target
                if target is not None:
                    obj["supersedes"] = target
                    item = Item("ui", 0, None, value=obj)
                    parsed, flags = self._checked(item)
            if (flags or verify.get("differs")) and not confirm:
                return {"need_confirm": True, "flags": [f.to_dict() for f in flags],
                        "verify": verify}  # fmt: skip
            sink = Collect()
            await enter_items(
                self.store, [item], master=self.master, clock=clock.now_s, batch_size=1,
                sink=sink,
            )  # fmt: skip
            if sink.saved_items:
                seq = sink.saved_items[0].seq
            else:
                rej = sink.rejected_items[0]
                if rej.code != "already_saved":
                    raise UiError(rej.reason, rej.alasan, code=rej.code, field=rej.field)
                (same,) = await self.store.same_entries([parsed])
                if same is None:  # pragma: no cover - the store just said it holds it
                    raise UiError(rej.reason, rej.alasan, code=rej.code)
                seq = same  # saved before (a retry after a crash, or the same numbers again)
            now = self.now()
            await self.ui.finish(draft_id, SAVED, seq, now)
            await self.ui.record_save(
                SaveRow(
                    seq=seq, operator=operator, session=self.session or "", started_at=d.created_at,
                    saved_at=now, keystrokes=keystrokes, refused=refused, flagged=bool(flags),
                    form=d.form, tps=d.tps,
                ),
                d.scans,
            )  # fmt: skip
            await self.ui.remember_layout(d.form, d.tps, rows_c)
            d.state, d.seq = SAVED, seq
            log.info("saved %s TPS %s as #%d", d.form, d.tps, seq)
            return await self._saved_reply(d, seq, again=False, verify=verify)

    def _checked(self, item: Item) -> tuple[dict[str, Any], list[rules.Flag]]:
        """``client.intake.check_item``: schema and rules as ``c1client enter`` checks them."""
        checked = check_item(item, self.master)
        if not isinstance(checked, tuple):
            raise UiError(checked.reason, checked.alasan, code=checked.code, field=checked.field)
        return checked

    def _verify(self, d: Draft, parsed: dict[str, Any]) -> dict[str, Any]:
        """For a second keying or a correction from the work list: does what was keyed agree
        with the hub's readings? (By digest: the numbers were never sent here.)"""
        readings = d.work.get("live") or []
        if d.mode not in ("second", "correction") or not readings:
            return {}
        mine = worklist.digest(entry.numbers(parsed)).hex()
        agree = [r for r in readings if r.get("digest") == mine]
        return {"mode": d.mode, "agrees": len(agree), "readings": len(readings),
                "differs": not agree}  # fmt: skip

    async def _saved_reply(
        self, d: Draft, seq: int, *, again: bool, verify: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        e = await self.store.get(seq)
        flags = []
        if e is not None:
            flags = [f.to_dict() for f in rules.check(self._body(e.seq, e.raw))]
        return {
            "seq": seq,
            "hash": e.hash.hex() if e else None,
            "again": again,
            "form": d.form,
            "tps": d.tps,
            "flags": flags,
            "verify": verify or {},
            "next": {"form": d.form, "tps": self.next_tps(d.tps)},
        }

    # -- scans --------------------------------------------------------------------------------

    async def upload(self, chunks: AsyncIterator[bytes]) -> dict[str, Any]:
        """Store a page streamed from the browser (never whole in memory)."""
        w = await asyncio.to_thread(self.blobs.writer)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(w.write, chunk)
            info = await asyncio.to_thread(w.commit)
        except BaseException:
            w.abort()
            raise
        return self._blob_view(info)

    def _blob_view(self, info: BlobInfo) -> dict[str, Any]:
        return {"hash": info.hash, "kind": info.kind, "size": info.size, "held": True}

    async def set_scans(self, draft_id: str, scans: Any) -> dict[str, Any]:
        d = await self._open_draft(draft_id)
        if d.state != OPEN:
            raise UiError("this form is already saved", "formulir ini sudah tersimpan",
                          code="saved", status=409)  # fmt: skip
        if not isinstance(scans, list) or len(scans) > entry.MAX_SCANS:
            raise UiError(
                f"at most {entry.MAX_SCANS} pages per form",
                f"paling banyak {entry.MAX_SCANS} halaman per formulir",
                code="bad_scans",
            )
        for h in scans:
            if not isinstance(h, str) or not self.blobs.has(h):
                raise UiError("unknown page", "halaman tidak dikenal", code="bad_scans")
        uniq = list(dict.fromkeys(scans))
        await self.ui.set_scans(draft_id, uniq, self.now())
        return {"scans": [self._scan_view(h) for h in uniq]}

    async def inbox(self) -> list[dict[str, Any]]:
        """Files in the scanner's folder, newest first; ``used`` names the entry that has it."""
        folder = self.cfg.scans_dir
        if folder is None:
            return []
        files = await asyncio.to_thread(_list_folder, folder)
        used = await self.ui.used_scans()
        out = []
        for path, size, mtime_ns in files[:MAX_INBOX]:
            digest = await self.ui.inbox_hash(str(path), size, mtime_ns)
            out.append(
                {
                    "name": path.name,
                    "size": size,
                    "mtime": mtime_ns / 1e9,
                    "hash": digest,
                    "used": used.get(digest) if digest else None,
                }
            )
        return out

    async def take_inbox(self, name: str) -> dict[str, Any]:
        folder = self.cfg.scans_dir
        if folder is None or not name or "/" in name or name.startswith("."):
            raise NotFound("no such file in the scan folder", "berkas tidak ada di folder pindaian")
        path = folder / name
        try:
            st = path.stat()
        except OSError:
            raise NotFound(
                f"{name} is no longer in the scan folder", f"{name} tidak ada lagi di folder"
            ) from None
        info = await asyncio.to_thread(self.blobs.put_file, path)
        await self.ui.remember_inbox(str(path), st.st_size, st.st_mtime_ns, info.hash)
        return self._blob_view(info)

    # -- entries ------------------------------------------------------------------------------

    def _body(self, seq: int, raw: bytes) -> dict[str, Any]:
        b = self._bodies.get(seq)
        if b is None:
            b = entry.decode_body(record.decode(raw).body)
            self._bodies[seq] = b
        return b

    async def entries(self, q: str = "", limit: int = 500) -> dict[str, Any]:
        """This laptop's entries, newest first, with their state; ``q`` filters by TPS code
        or place name."""
        marks = await self.store.marks()
        hub = await self.store.hub_info()
        pending = hub is not None and hub.state == "pending"
        rows: list[dict[str, Any]] = []
        superseded: dict[str, int] = {}
        async for e in self.store.entries():
            body = self._body(e.seq, e.raw)
            if body.get("supersedes"):
                superseded[body["supersedes"]] = e.seq
            rows.append(
                {
                    "seq": e.seq,
                    "hash": e.hash.hex(),
                    "form": e.form,
                    "tps": e.tps,
                    "flags": list(e.flags),
                    "state": marks.state(e.seq),
                    "entered_at": e.entered_at,
                    "operator": body["operator"],
                    "scans": len(body["scans"]),
                    "supersedes": body.get("supersedes"),
                }
            )
        ql = q.strip().lower()
        out = []
        for r in reversed(rows):
            r["superseded_by"] = superseded.get(r["hash"])
            r["pending"] = pending and r["state"] == AT_HUB
            info = self.tps_info(r["tps"])
            r["place"] = info.get("place", r["tps"])
            if ql and ql not in r["tps"] and ql not in str(r["place"]).lower():
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return {"entries": out, "total": len(rows), "pending": pending,
                "states": [LOCAL, AT_HUB, CONFIRMED]}  # fmt: skip

    async def entry(self, seq: int) -> dict[str, Any]:
        e = await self.store.get(seq)
        if e is None:
            raise NotFound(f"there is no entry #{seq}", f"tidak ada entri #{seq}")
        body = self._body(e.seq, e.raw)
        marks = await self.store.marks()
        rows = _rows_of(body)
        return {
            "seq": e.seq,
            "hash": e.hash.hex(),
            "state": marks.state(e.seq),
            "entry": entry.to_json(body),
            "cells": _cells_of(body),
            "rows": rows,
            "layout": layout.spec(body["form"], body["tps"], rows, self.lang),
            "place": self.tps_info(body["tps"]),
            "flags": [f.to_dict() for f in rules.check(body)],
            "scans": [self._scan_view(h) for h in body["scans"]],
        }

    async def correct(self, seq: int) -> dict[str, Any]:
        """ "Koreksi": a new draft prefilled from entry ``seq``; saving it signs a new entry
        that supersedes it (nothing is edited in place)."""
        e = await self.store.get(seq)
        if e is None:
            raise NotFound(f"there is no entry #{seq}", f"tidak ada entri #{seq}")
        body = self._body(e.seq, e.raw)
        return await self.new_draft(
            body["form"], body["tps"], mode="koreksi", supersedes=e.hash.hex(),
            work={"supersedes_seq": seq}, cells=_cells_of(body), rows=_rows_of(body),
            scans=list(body["scans"]), force=True,
        )  # fmt: skip

    # -- double entry (the hub's work list) ---------------------------------------------------

    async def _hub_link(self) -> HubLink:
        hub = await self.store.hub_info()
        if hub is None or self._http is None:
            raise UiError(
                "no hub yet: the work list comes from the hub once this laptop has synced",
                "belum ada hub: daftar kerja datang dari hub setelah laptop ini tersinkron",
                code="no_hub",
                status=503,
            )
        return HubLink(self._http, hub.url)

    async def work(self, tps: str = "") -> dict[str, Any]:
        link = await self._hub_link()
        q = f"origin={self.store.identity.public.hex()}&election={self.cfg.election}&limit=200"
        if tps.isdigit():
            q += f"&tps={tps[:10]}"
        try:
            wl = await link.work(q)
        except Exception as exc:
            raise UiError(
                f"the hub did not answer: {exc}", f"hub tidak menjawab: {exc}",
                code="hub_unreachable", status=503,
            ) from None  # fmt: skip

        def item(i: dict[str, Any], need: str) -> dict[str, Any]:
            return {
                "need": need,
                "form": i["form"],
                "tps": i["tps"],
                "status": i["status"],
                "place": self.tps_info(i["tps"]).get("place", i["tps"]),
                "readings": len(i["live"]),
                "mine": sum(r.get("mine", 0) for r in i["live"]),
            }

        return {
            "second": [item(i, "second") for i in wl.get("second", [])],
            "correction": [item(i, "correction") for i in wl.get("correction", [])],
            "more": wl.get("more", {}),
        }

    async def start_work(self, form: str, tps: str, need: str) -> dict[str, Any]:
        """Start a blind keying of a form from the work list: no numbers are shown."""
        if need not in ("second", "correction"):
            raise UiError("unknown work", "pekerjaan tidak dikenal", code="bad_mode")
        link = await self._hub_link()
        q = (
            f"origin={self.store.identity.public.hex()}&election={self.cfg.election}"
            f"&limit=0&key={form}:{tps}"
        )
        wl = await link.work(q)
        (k,) = wl["keys"]
        live = [
            {"hash": r["hash"].hex(), "digest": r["digest"].hex(), "mine": r.get("mine", 0)}
            for r in k["live"]
        ]
        return await self.new_draft(
            form, tps, mode=need, work={"live": live, "status": k["status"]}, force=True
        )

    async def key_status(self, form: str, tps: str, seq: int | None = None) -> dict[str, Any]:
        """The hub's double-entry status of one form (after a save: verified or conflict?);
        ``held``: whether entry ``seq`` of this laptop is one of its live readings yet."""
        link = await self._hub_link()
        q = f"election={self.cfg.election}&limit=0&key={form}:{tps}"
        try:
            wl = await link.work(q)
        except Exception as exc:
            raise UiError(
                f"the hub did not answer: {exc}", f"hub tidak menjawab: {exc}",
                code="hub_unreachable", status=503,
            ) from None  # fmt: skip
        (k,) = wl["keys"]
        held = None
        if seq is not None:
            e = await self.store.get(seq)
            held = e is not None and any(r["hash"] == e.hash for r in k["live"])
        return {"status": k["status"], "readings": len(k["live"]), "held": held}

    def _correction_target(self, d: Draft, parsed: dict[str, Any]) -> str | None:
        """The reading a correction from the work list supersedes: the only one that
        disagrees with what was keyed now, when another one agrees (else None: the keying
        agrees with no reading, or several disagree; the coordinator decides)."""
        readings = d.work.get("live") or []
        mine = worklist.digest(entry.numbers(parsed)).hex()
        wrong = [r for r in readings if r.get("digest") != mine]
        if len(readings) - len(wrong) >= 1 and len(wrong) == 1:
            return str(wrong[0]["hash"])
        return None

    # -- connection and pace ------------------------------------------------------------------

    def on_sync_report(self, rep: SyncReport) -> None:
        self.sync.last_report = rep
        self.sync.last_ok_at = self.now()
        self.sync.last_error = None

    def on_sync_error(self, reason: str, delay: float) -> None:
        self.sync.last_error = reason
        self.sync.last_error_at = self.now()

    async def connection(self) -> dict[str, Any]:
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
        if url is None or self._http is None:
            return None
        if clock.monotonic() - at < UPSTREAM_MAX_AGE:
            return cached
        got: dict[str, Any] | None = None
        with contextlib.suppress(Exception):
            async with self._http.get(
                url.rstrip("/") + "/v1/status", timeout=aiohttp.ClientTimeout(total=3)
            ) as r:
                if r.status == 200:
                    up = (await r.json()).get("upstream")
                    if isinstance(up, dict):
                        got = {k: up.get(k) for k in ("state", "backlog", "oldest_age_s",
                                                       "confirmed", "rejected")}  # fmt: skip
        self._upstream = (clock.monotonic(), got)
        return got

    async def stats(self) -> dict[str, Any]:
        """The operator's pace this session (since sign-in)."""
        if not self.session:
            return {"forms": 0}
        saves = await self.ui.saves(self.session)
        started = await self.ui.session_started(self.session) or self.now()
        hours = max((self.now() - started) / 3600, 1e-9)
        keys = sum(s.keystrokes for s in saves)
        refused = sum(s.refused for s in saves)
        n = len(saves)
        typing = [s.saved_at - s.started_at for s in saves]
        return {
            "operator": self.operator,
            "since": started,
            "forms": n,
            "forms_per_hour": round(n / hours, 1),
            "keystrokes_per_form": round(keys / n, 1) if n else None,
            "keystrokes_per_hour": round(keys / hours),
            "seconds_per_form": round(sum(typing) / n, 1) if n else None,
            "flag_rate": round(sum(s.flagged for s in saves) / n, 3) if n else None,
            "refused_per_1000": round(1000 * refused / keys, 1) if keys else None,
        }


def _list_folder(folder: Path) -> list[tuple[Path, int, int]]:
    out = []
    with os.scandir(folder) as it:
        for de in it:
            if de.name.startswith(".") or not de.is_file():
                continue
            st = de.stat()
            out.append((Path(de.path), st.st_size, st.st_mtime_ns))
    out.sort(key=lambda x: x[2], reverse=True)
    return out


def _cells_of(body: dict[str, Any]) -> dict[str, str]:
    """An entry's numbers as the page's cells."""
    out: dict[str, str] = {}
    for f in (*entry.LPJ_FIELDS, "disabilitas"):
        if f in body:
            for k in layout.LPJ:
                out[f"{f}.{k}"] = str(body[f][k])
    for k, v in body.get("surat_suara", {}).items():
        out[f"surat_suara.{k}"] = str(v)
    for no, v in body.get("suara", {}).items():
        out[f"suara.{no}"] = str(v)
    for no, p in body.get("partai", {}).items():
        out[f"partai.{no}.partai"] = str(p["partai"])
        out[f"partai.{no}.jumlah"] = str(p["jumlah"])
        for c, v in p["caleg"].items():
            out[f"partai.{no}.caleg.{c}"] = str(v)
    for f in entry.TOTAL_FIELDS:
        out[f] = str(body[f])
    return out


def _rows_of(body: dict[str, Any]) -> dict[str, Any]:
    """The rows an entry has (its candidates; its parties with their candidates)."""
    if "suara" in body:
        return {"suara": sorted(body["suara"], key=int)}
    partai = {p: sorted(v["caleg"], key=int) for p, v in body["partai"].items()}
    return {"partai": dict(sorted(partai.items(), key=lambda kv: int(kv[0])))}
