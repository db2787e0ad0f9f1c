"""Places: TPS codes and their names from the polling-station master, the type-ahead over
kelurahan, the next TPS of a kelurahan, and the check that a form may be started at a TPS."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from hub.protocol import entry, rules
from hub.protocol.wilayah import Master

from .errors import UiError


@dataclass(slots=True)
class _TpsIndex:
    """Kelurahan for type-ahead: (desa code, lower-case search text), codes sorted, and the
    number of TPS of each kelurahan."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class Places:
    """The TPS index over the master (``None``: no master, codes are checked by shape only)."""

    def __init__(self, master: Master | None):
        self.master = master
        self._index: _TpsIndex | None = None

    def info(self, tps: str) -> dict[str, Any]:
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

    def index(self) -> _TpsIndex:
        """Build the type-ahead index once (``Station.start`` runs it in a thread)."""
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

    def search(self, q: str, limit: int = 12) -> list[dict[str, Any]]:
        """Type-ahead: kelurahan whose names (with kecamatan, kab/kota, province) contain every
        word of ``q``; digits: codes starting with ``q``."""
        q = q.strip().lower()
        if not q or self.master is None:
            return []
        out: list[str] = []
        idx = self.index()
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

    def check_start(self, form: str, tps: str) -> None:
        """Refuse a form type or TPS code a draft cannot start with (R11 before any typing)."""
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
