"""The hub's Prometheus text (``GET /metrics``): cheap counters and gauges only, no derived
state (docs/protocol.md, docs/operations.md)."""

from __future__ import annotations

from hub.service import Metrics


def metrics_text(m: Metrics) -> str:
    lines = [
        "# HELP c1hub_records_stored Records durably stored (all devices, held included).",
        "# TYPE c1hub_records_stored counter",
        f"c1hub_records_stored {m.records_stored}",
        "# HELP c1hub_commits Group commits of pushed batches.",
        "# TYPE c1hub_commits counter",
        f"c1hub_commits {m.commits}",
        "# HELP c1hub_pushes Push requests answered.",
        "# TYPE c1hub_pushes counter",
        f"c1hub_pushes {m.pushes}",
        "# HELP c1hub_forks Forks of the room's devices (approved at some point): the alarm.",
        "# TYPE c1hub_forks gauge",
        f"c1hub_forks {m.forks}",
        "# HELP c1hub_forks_unapproved Forks of keys never approved (evidence, not an alarm).",
        "# TYPE c1hub_forks_unapproved gauge",
        f"c1hub_forks_unapproved {m.forks_unapproved}",
        "# HELP c1hub_held_records Records held from devices never approved (max_held_records).",
        "# TYPE c1hub_held_records gauge",
        f"c1hub_held_records {m.held_records}",
        "# HELP c1hub_held_bytes Bytes of those records as stored (max_held_bytes).",
        "# TYPE c1hub_held_bytes gauge",
        f"c1hub_held_bytes {m.held_bytes}",
        "# HELP c1hub_devices Devices by enrollment state.",
        "# TYPE c1hub_devices gauge",
    ]
    for st in ("pending", "approved", "revoked"):
        lines.append(f'c1hub_devices{{state="{st}"}} {m.devices.get(st, 0)}')
    up = m.upstream
    if up is not None:
        lines += [
            "# HELP c1hub_upstream_up 1 when the last call upstream succeeded.",
            "# TYPE c1hub_upstream_up gauge",
            f"c1hub_upstream_up {1 if up['state'] == 'up' else 0}",
            "# HELP c1hub_upstream_backlog Entries upstream does not hold yet.",
            "# TYPE c1hub_upstream_backlog gauge",
            f"c1hub_upstream_backlog {up['backlog']}",
            "# HELP c1hub_upstream_confirmed Entries upstream has signed receipts for.",
            "# TYPE c1hub_upstream_confirmed gauge",
            f"c1hub_upstream_confirmed {up['confirmed']}",
            "# HELP c1hub_upstream_rejected Devices stopped by an upstream refusal.",
            "# TYPE c1hub_upstream_rejected gauge",
            f"c1hub_upstream_rejected {up['rejected']}",
        ]
    if m.scans is not None:
        lines += _scan_metrics(m.scans)
    return "\n".join(lines) + "\n"


_SCAN_METRICS = (
    ("scans_expected", "expected", "gauge", "Page images named by the entries held."),
    ("scans_held", "held", "gauge", "Page images held here (whole, hash checked)."),
    ("scans_missing", "missing", "gauge", "Page images named but not here yet (scan pending)."),
    ("scans_pending_upstream", "pending_upstream", "gauge",
     "Page images held here that upstream is not known to hold."),
    ("scan_bytes_pending_upstream", "bytes_pending", "gauge", "Bytes of those."),
    ("scans_received_total", "received", "counter", "Page images received whole since start."),
    ("scan_bytes_received_total", "received_bytes", "counter",
     "Scan upload bytes received and stored since start."),
    ("scans_sent_upstream_total", "sent", "counter", "Page images upstream stored since start."),
    ("scan_bytes_sent_upstream_total", "sent_bytes", "counter",
     "Scan upload bytes sent upstream since start."),
)  # fmt: skip


def _scan_metrics(values: dict[str, int]) -> list[str]:
    out = []
    for name, key, kind, help_ in _SCAN_METRICS:
        out += [f"# HELP c1hub_{name} {help_}", f"# TYPE c1hub_{name} {kind}",
                f"c1hub_{name} {values[key]}"]  # fmt: skip
    return out
