"""The operator's station: what the page asks for, on top of the laptop's store.

``Station`` owns sign-in, drafts, live checks and saving; the handlers reach the rest through
the small objects it holds: ``places`` (``places.Places``: TPS names, type-ahead), ``scans``
(``scans.Scans``), ``entries`` (``entries.Entries``), ``double_entry``
(``doubleentry.DoubleEntry``: the hub's work list) and ``connection``
(``connection.Connection``: sync state, the connection panel, pace).

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
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from client.intake import Collect, Item, check_item, enter_items
from client.store import ClientStore
from hub.protocol import clock, entry, rules
from hub.protocol.wilayah import Master
from hub.shared.blobs import BlobStore

from . import cells as cells_mod
from . import layout
from .config import UiConfig
from .connection import Connection
from .doubleentry import NEEDS, DoubleEntry, correction_target, verify
from .drafts import DISCARDED, OPEN, SAVED, Draft, SaveRow, UiStore
from .entries import Entries, cells_of, rows_of
from .errors import NotFound, UiError
from .places import Places
from .scans import Scans

log = logging.getLogger(__name__)

MODES = ("new", *NEEDS, "koreksi")


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
        self._save_lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self.places = Places(master)
        self.scans = Scans(blobs, ui, cfg.scans_dir)
        self.entries = Entries(store, cfg.election, self.places, self.scans)
        self.double_entry = DoubleEntry(store, cfg.election, self.places, lambda: self._http)
        self.connection = Connection(store, ui, lambda: self._http, running=cfg.sync, now=now)
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
        # pages left half-copied by a crash; never one another process is writing now
        await asyncio.to_thread(self.blobs.expire_tmp, self.cfg.client.partial_max_age)
        if self.master is not None:
            await asyncio.to_thread(self.places.index)  # type-ahead answers at once from now on
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

    # -- drafts -------------------------------------------------------------------------------

    async def _draft_view(self, d: Draft) -> dict[str, Any]:
        rows = layout.clean_rows(d.form, d.tps, d.rows)
        return {
            "id": d.id,
            "form": d.form,
            "tps": d.tps,
            "place": self.places.info(d.tps),
            "mode": d.mode,
            "supersedes": d.supersedes,
            "supersedes_seq": d.work.get("supersedes_seq"),
            "cells": d.cells,
            "rows": rows,
            "scans": [self.scans.view(h) for h in d.scans],
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

    def _live(
        self, form: str, tps: str, rows: dict[str, Any], cells: dict[str, str]
    ) -> list[rules.Flag]:
        try:
            return cells_mod.live_flags(form, tps, rows, cells, self.master)
        except cells_mod.CellError:
            return []

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
        self.places.check_start(form, tps)
        if mode not in MODES:
            raise UiError("unknown mode", "mode tidak dikenal", code="bad_mode")
        if mode == "new" and not force:
            seqs = await self.entries.existing(form, tps)
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
            verdict = verify(d, parsed)
            if d.mode == "correction":
                target = correction_target(d, parsed)
                verdict["supersedes"] = target
                if target is not None:
                    obj["supersedes"] = target
                    item = Item("ui", 0, None, value=obj)
                    parsed, flags = self._checked(item)
            if (flags or verdict.get("differs")) and not confirm:
                return {"need_confirm": True, "flags": [f.to_dict() for f in flags],
                        "verify": verdict}  # fmt: skip
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
            return await self._saved_reply(d, seq, again=False, verify=verdict)

    def _checked(self, item: Item) -> tuple[dict[str, Any], list[rules.Flag]]:
        """``client.intake.check_item``: schema and rules as ``c1client enter`` checks them."""
        checked = check_item(item, self.master)
        if not isinstance(checked, tuple):
            raise UiError(checked.reason, checked.alasan, code=checked.code, field=checked.field)
        return checked

    async def _saved_reply(
        self, d: Draft, seq: int, *, again: bool, verify: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        e = await self.store.get(seq)
        flags = []
        if e is not None:
            flags = [f.to_dict() for f in rules.check(self.entries.body(e.seq, e.raw))]
        return {
            "seq": seq,
            "hash": e.hash.hex() if e else None,
            "again": again,
            "form": d.form,
            "tps": d.tps,
            "flags": flags,
            "verify": verify or {},
            "next": {"form": d.form, "tps": self.places.next_tps(d.tps)},
        }

    # -- a draft's pages ----------------------------------------------------------------------

    async def set_scans(self, draft_id: str, scans: Any) -> dict[str, Any]:
        """The pages of an open draft, in order (each one held by this laptop)."""
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
            if not isinstance(h, str) or not self.scans.has(h):
                raise UiError("unknown page", "halaman tidak dikenal", code="bad_scans")
        uniq = list(dict.fromkeys(scans))
        await self.ui.set_scans(draft_id, uniq, self.now())
        return {"scans": [self.scans.view(h) for h in uniq]}

    # -- starting a draft from an entry or from the hub's work list ---------------------------

    async def correct(self, seq: int) -> dict[str, Any]:
        """ "Koreksi": a new draft prefilled from entry ``seq``; saving it signs a new entry
        that supersedes it (nothing is edited in place)."""
        e = await self.store.get(seq)
        if e is None:
            raise NotFound(f"there is no entry #{seq}", f"tidak ada entri #{seq}")
        body = self.entries.body(e.seq, e.raw)
        return await self.new_draft(
            body["form"], body["tps"], mode="koreksi", supersedes=e.hash.hex(),
            work={"supersedes_seq": seq}, cells=cells_of(body), rows=rows_of(body),
            scans=list(body["scans"]), force=True,
        )  # fmt: skip

    async def start_work(self, form: str, tps: str, need: str) -> dict[str, Any]:
        """Start a blind keying of a form from the work list: no numbers are shown."""
        if need not in NEEDS:
            raise UiError("unknown work", "pekerjaan tidak dikenal", code="bad_mode")
        work = await self.double_entry.readings(form, tps)
        return await self.new_draft(form, tps, mode=need, work=work, force=True)

    # -- the operator's own view --------------------------------------------------------------

    async def entry(self, seq: int) -> dict[str, Any]:
        """Entry ``seq`` in the page's language."""
        return await self.entries.get(seq, self.lang)

    async def stats(self) -> dict[str, Any]:
        """The operator's pace this session (since sign-in)."""
        return await self.connection.pace(self.session, self.operator)
