"""The read-only page of the national side (the root) and of any hub whose entries are in
PostgreSQL (a big provincial hub): one HTML page rendered from the status dict, with the
national results per region. Room hubs have the coordinator's console (``hub.console``).

No JavaScript; the page refreshes itself every few seconds. Indonesian by default
(``?lang=en`` for English). What needs the coordinator's attention comes first: forks,
pending devices (with their comparison codes), conflicts, upstream trouble.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from hub.protocol.rules import RULES

REFRESH_S = 5

_T: dict[str, tuple[str, str]] = {
    "title": ("Hub C1 — {name}", "C1 hub — {name}"),
    "accepted": ("Entri diterima", "Entries accepted"),
    "held": ("Entri ditahan", "Entries held"),
    "single": ("TPS satu entri", "TPS single"),
    "verified": ("TPS terverifikasi", "TPS verified"),
    "conflict": ("TPS konflik", "TPS in conflict"),
    "forks": ("Fork", "Forks"),
    "forks_unapproved": ("Fork perangkat tak disetujui", "Forks of unapproved keys"),
    "stray_note": (
        "{n} fork dari kunci yang tidak pernah disetujui: disimpan sebagai bukti, bukan "
        "perangkat ruangan ini, tidak ada entrinya yang dihitung.",
        "{n} fork(s) of keys never approved: kept as evidence; not this room's devices, "
        "nothing of theirs is counted.",
    ),
    "fork_alert": (
        "PERHATIAN: {n} perangkat menandatangani dua riwayat berbeda (folder data disalin?). "
        "Entri perangkat itu ditahan. Lihat daftar perangkat.",
        "ATTENTION: {n} device(s) signed two different histories (a copied data folder?). "
        "Their entries are held. See the device list.",
    ),
    "pending_alert": (
        "{n} laptop menunggu persetujuan: cocokkan kode di layar laptop, lalu `c1hub approve ID`.",
        "{n} laptop(s) waiting for approval: compare the code with the laptop's screen, then "
        "`c1hub approve ID`.",
    ),
    "devices": ("Perangkat", "Devices"),
    "devices_more": (
        "{n} perangkat pertama dari {total}; semuanya: `c1hub devices` atau "
        "GET /v1/devices?limit=1000&after=ID.",
        "The first {n} of {total} devices; all of them: `c1hub devices`, or "
        "GET /v1/devices?limit=1000&after=ID.",
    ),
    "name": ("Nama", "Name"),
    "state": ("Status", "State"),
    "code": ("Kode", "Code"),
    "entries": ("Entri", "Entries"),
    "last_seen": ("Terakhir terlihat", "Last seen"),
    "conflicts": ("Konflik (perlu entri koreksi)", "Conflicts (need a correcting entry)"),
    "flags": ("Catatan aturan R1–R13 (entri hidup)", "Rule flags R1–R13 (live entries)"),
    "rule": ("Aturan", "Rule"),
    "form": ("Formulir", "Form"),
    "upstream": ("Pengiriman ke pusat", "Upstream"),
    "backlog": ("Antrean", "Backlog"),
    "up_pending": ("Hub ini belum disetujui pusat", "This hub is not approved upstream yet"),
    "oldest": ("Tertua", "Oldest"),
    "confirmed": ("Terkonfirmasi", "Confirmed"),
    "rejected": ("Ditolak pusat", "Refused upstream"),
    "progress": ("Kemajuan per kecamatan", "Progress per kecamatan"),
    "kecamatan": ("Kecamatan", "Kecamatan"),
    "expected": ("TPS seharusnya", "TPS expected"),
    "entered": ("TPS masuk", "TPS entered"),
    "missing": ("Belum", "Missing"),
    "none": ("tidak ada", "none"),
    "totals": ("Perolehan suara", "Vote totals"),
    "votes": ("Suara", "Votes"),
    "hubs": ("Hub pengirim", "Hubs sending"),
    "by_region": ("Hasil per wilayah", "Results per region"),
    "region": ("Wilayah", "Region"),
    "country": ("seluruh Indonesia", "the whole country"),
    "ago": ("{s} dtk lalu", "{s} s ago"),
}


_STATE = {
    "pending": ("menunggu", "pending"),
    "approved": ("disetujui", "approved"),
    "revoked": ("dicabut", "revoked"),
    "up": ("tersambung", "up"),
    "down": ("terputus", "down"),
    "backoff": ("menunggu coba lagi", "backing off"),
}


def _t(lang: str, key: str, **kw: Any) -> str:
    ind, eng = _T[key]
    return (ind if lang == "id" else eng).format(**kw)


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render(s: dict[str, Any], lang: str = "id", regions: Sequence[dict[str, Any]] = ()) -> str:
    e = escape
    now = s["now"]
    tiles = [
        ("accepted", s["entries"]["accepted"], ""),
        ("held", s["entries"]["held"], "warn" if s["entries"]["held"] else ""),
        ("single", s["tps"]["single"], ""),
        ("verified", s["tps"]["verified"], "ok"),
        ("conflict", s["tps"]["conflict"], "bad" if s["tps"]["conflict"] else ""),
        ("forks", s["forks"], "bad" if s["forks"] else ""),
    ]
    if s.get("forks_unapproved"):
        tiles.append(("forks_unapproved", s["forks_unapproved"], ""))
    parts = [
        f"<!doctype html><html lang='{lang}'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<meta http-equiv='refresh' content='{REFRESH_S}'>",
        f"<title>{e(_t(lang, 'title', name=s['name']))}</title>",
        "<style>body{font:15px system-ui,sans-serif;margin:1.5em;color:#222}"
        ".tiles{display:flex;gap:.8em;flex-wrap:wrap}.tile{border:1px solid #ccc;border-radius:6px;"
        "padding:.6em 1em;min-width:8em}.tile b{display:block;font-size:1.8em}"
        ".ok b{color:#176b2c}.warn{background:#fff6d6}.bad{background:#ffe0e0}"
        ".alert{padding:.7em 1em;margin:.8em 0;border-radius:6px}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #ddd;"
        "padding:.25em .8em;text-align:left}code{font-size:1.1em}</style></head><body>",
        f"<h1>{e(_t(lang, 'title', name=s['name']))}</h1>",
        f"<p>{e(s['role'])} <code>{e(s['node_id'])}</code> · "
        f"<a href='?lang={'en' if lang == 'id' else 'id'}'>"
        f"{'English' if lang == 'id' else 'Bahasa Indonesia'}</a></p>",
    ]
    if s["forks"]:
        parts.append(f"<div class='alert bad'>{e(_t(lang, 'fork_alert', n=s['forks']))}</div>")
    if s.get("forks_unapproved"):
        note = _t(lang, "stray_note", n=s["forks_unapproved"])
        parts.append(f"<p class='alert'>{e(note)}</p>")
    pending = s["devices"]["pending"]
    if pending:
        parts.append(f"<div class='alert warn'>{e(_t(lang, 'pending_alert', n=pending))}</div>")
    parts.append("<div class='tiles'>")
    for key, value, cls in tiles:
        parts.append(f"<div class='tile {cls}'><b>{value}</b>{e(_t(lang, key))}</div>")
    parts.append("</div>")

    up = s.get("upstream")
    if up and up["state"] != "none":
        age = up.get("oldest_age_s")
        cls = "ok" if up["state"] == "up" else "bad"
        parts.append(f"<h2>{e(_t(lang, 'upstream'))}</h2><div class='tiles'>")
        st = _STATE.get(up["state"], (up["state"], up["state"]))[0 if lang == "id" else 1]
        parts.append(f"<div class='tile {cls}'><b>{e(st)}</b>{e(up.get('url') or '')}</div>")
        if up.get("enrollment") == "pending":
            parts.append(f"<div class='tile bad'><b>{e(_t(lang, 'up_pending'))}</b>"
                         f"{e(_t(lang, 'code'))} {e(str(up.get('code')))}</div>")  # fmt: skip
        parts.append(f"<div class='tile'><b>{up['backlog']}</b>{e(_t(lang, 'backlog'))}</div>")
        if age is not None:
            parts.append(f"<div class='tile warn'><b>{age:.0f} s</b>{e(_t(lang, 'oldest'))}</div>")
        parts.append(f"<div class='tile'><b>{up['confirmed']}</b>{e(_t(lang, 'confirmed'))}</div>")
        rej_cls = "bad" if up["rejected"] else ""
        parts.append(
            f"<div class='tile {rej_cls}'><b>{up['rejected']}</b>{e(_t(lang, 'rejected'))}</div>"
        )
        parts.append("</div>")
        for r in up.get("rejections", [])[:50]:
            parts.append(
                f"<p class='alert bad'><code>{e(r['device'])}</code> #{e(str(r['seq']))}: "
                f"{e(r['reason'])} ({e(r['code'])})</p>"
            )

    parts.append(f"<h2>{e(_t(lang, 'devices'))}</h2>")
    rows = []
    for d in s["device_list"]:
        state = _STATE.get(d["state"], (d["state"], d["state"]))[0 if lang == "id" else 1]
        state += " — FORK" if d["forked"] else ""
        rows.append([
            f"<code>{e(d['id'])}</code>", e(d["name"]), e(state), f"<code>{e(d['code'])}</code>",
            str(d["entries"]), e(_t(lang, "ago", s=max(int(now - d["last_seen"]), 0))),
        ])  # fmt: skip
    headers = ["ID", _t(lang, "name"), _t(lang, "state"), _t(lang, "code"), _t(lang, "entries"),
               _t(lang, "last_seen")]  # fmt: skip
    parts.append(_table(headers, rows) if rows else f"<p>{e(_t(lang, 'none'))}</p>")
    if s.get("device_list_more"):  # a big hub's status lists the first page (hub.status)
        total = sum(s["devices"].values())
        parts.append(f"<p>{e(_t(lang, 'devices_more', n=len(rows), total=total))}</p>")

    parts.append(f"<h2>{e(_t(lang, 'conflicts'))}</h2>")
    if s["conflicts"]:
        parts.append(_table([_t(lang, "form"), "TPS", "#"], [
            [e(c["form"]), f"<code>{e(c['tps'])}</code>", str(len(c["live"]))]
            for c in s["conflicts"]
        ]))  # fmt: skip
    else:
        parts.append(f"<p>{e(_t(lang, 'none'))}</p>")

    parts.append(f"<h2>{e(_t(lang, 'flags'))}</h2>")
    if s["flags"]:
        col = 2 if lang == "id" else 1
        parts.append(_table([_t(lang, "rule"), "#", ""], [
            [e(rule), str(n), e(RULES[rule][col])] for rule, n in s["flags"].items()
        ]))  # fmt: skip
    else:
        parts.append(f"<p>{e(_t(lang, 'none'))}</p>")

    for election, forms in sorted(s.get("totals", {}).items()):
        for form, block in sorted(forms.items()):
            parts.append(
                f"<h2>{e(_t(lang, 'totals'))} {e(election)} {e(form)}: "
                f"{block['tps_counted']} TPS ({block['tps_in_conflict']} "
                f"{e(_t(lang, 'conflict'))})</h2>"
            )
            parts.append(_table(["No.", _t(lang, "votes")], [
                [e(no), str(v)] for no, v in block["votes"].items()
            ]))  # fmt: skip
    for r in regions:
        parts.append(_regions(r, lang))
    if s.get("hubs"):
        parts.append(f"<h2>{e(_t(lang, 'hubs'))}</h2>")
        parts.append(_table(["ID", _t(lang, "name"), _t(lang, "state"), _t(lang, "devices"),
                             _t(lang, "entries")], [
            [f"<code>{e(h['id'])}</code>", e(h["name"]), e(h["state"]), str(h["devices"]),
             str(h["entries"])] for h in s["hubs"]
        ]))  # fmt: skip

    prog = s.get("progress")
    if prog:
        parts.append(f"<h2>{e(_t(lang, 'progress'))}: {prog['entered_tps']} / "
                     f"{prog['expected_tps']}</h2>")  # fmt: skip
        rows = [
            [e(f"{r['kecamatan']} {r['name']}"), str(r["expected_tps"]), str(r["entered_tps"]),
             str(r["missing_tps"])]
            for r in sorted(prog["kecamatan"], key=lambda r: -r["missing_tps"])
        ]  # fmt: skip
        parts.append(_table([_t(lang, "kecamatan"), _t(lang, "expected"), _t(lang, "entered"),
                             _t(lang, "missing")], rows))  # fmt: skip
    parts.append("</body></html>")
    return "".join(parts)


def _regions(r: dict[str, Any], lang: str) -> str:
    """One election's results per child region (``hub.results``), each region a link one
    level down."""
    e = escape
    where = r["code"] or _t(lang, "country")
    out = [f"<h2 data-results='{e(r['election'])}'>{e(_t(lang, 'by_region'))} "
           f"{e(r['election'])}: {e(where)}</h2>"]  # fmt: skip
    for form, b in r["forms"].items():
        nos = list(b["votes"])
        rows = []
        for code, c in b.get("children", {}).items():
            link = f"<a href='?region={e(code)}'>{e(code)}</a>" if len(code) < 6 else e(code)
            counted = c["tps"]["single"] + c["tps"]["verified"]
            votes = [str(c["votes"].get(no, 0)) for no in nos]
            rows.append([link, str(counted), str(c["tps"]["conflict"]), *votes])
        out.append(f"<h3>{e(form)}</h3>")
        out.append(_table([_t(lang, "region"), "TPS", _t(lang, "conflict"), *nos], rows))
    return "".join(out)
