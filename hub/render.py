"""Plain-text rendering of a status dict for the coordinator's terminal."""

from __future__ import annotations

from typing import Any

from hub.protocol.rules import RULES


def status_text(s: dict[str, Any]) -> str:
    e, t, d = s["entries"], s["tps"], s["devices"]
    lines = [
        f"{s['role']} {s['name']} ({s['node_id']})",
        f"entries: {e['accepted']} accepted, {e['held']} held (pending or forked devices)",
        f"TPS forms: {t['single']} single, {t['verified']} verified, {t['conflict']} in conflict",
        f"devices: {d['approved']} approved, {d['pending']} pending, {d['revoked']} revoked",
    ]
    if s["forks"]:
        lines.append(
            f"!!! FORKS: {s['forks']} — a laptop's data folder was copied; see c1hub devices"
        )
    if s.get("forks_unapproved"):
        lines.append(
            f"forks of keys never approved: {s['forks_unapproved']} (kept as evidence; not the "
            "room's devices, nothing of theirs is counted)"
        )
    if s["flags"]:
        lines.append("flags (live entries):")
        for rule, n in s["flags"].items():
            lines.append(f"  {rule:<4}{n:>7}  {RULES[rule][1]}")
    for c in s["conflicts"][:20]:
        lines.append(f"conflict: {c['form']} TPS {c['tps']} ({len(c['live'])} live entries)")
    up = s.get("upstream")
    if up:
        age = up.get("oldest_age_s")
        if up.get("enrollment") == "pending":
            lines.append(
                f"!!! this hub is PENDING at the upstream (code {up.get('code')}): the national "
                "side holds its entries but does not count them until it approves this hub"
            )
        retry = up.get("retry_in_s")
        lines.append(
            f"upstream: {up['state']}"
            + (f" (retrying in {retry:.0f}s)" if retry is not None else "")
            + f", backlog {up['backlog']}"
            + (f" (oldest {age:.0f}s)" if age is not None else "")
            + f", confirmed {up['confirmed']}, rejected {up['rejected']}"
        )
        for r in up.get("rejections", [])[:10]:
            lines.append(f"  refused upstream: {r['device']} #{r['seq']}: {r['reason']}")
    sc = s.get("scans")
    if sc:
        eta = sc.get("eta_s")
        lines.append(
            f"scans: {sc['held']} of {sc['expected']} pages here, {sc['missing']} pending"
            f" ({sc['entries_pending']} entries: scan pending, not missing)"
            + (f", {sc['pending_upstream']} not upstream yet ({sc['bytes_pending'] / 1e6:.1f} MB"
               + (f", about {eta / 60:.0f} min to go)" if eta else ")")
               if s["role"] != "root" else "")
        )  # fmt: skip
    prog = s.get("progress")
    if prog:
        lines.append(f"progress: {prog['entered_tps']} of {prog['expected_tps']} TPS entered")
    return "\n".join(lines)
