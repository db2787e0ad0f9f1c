"""Hub settings: each declared once, with its default and help text.

The CLI builds one frozen ``HubConfig`` and validates it; core objects receive plain values.
docs/configuration.md lists every setting (a test checks it stays complete).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from hub.shared.settings import Setting, by_name

SETTINGS: list[Setting] = [
    Setting("data_dir", None, "Hub data folder (env C1HUB_DATA).", env="C1HUB_DATA"),
    Setting("host", "0.0.0.0", "Address to listen on. 0.0.0.0 = every interface of the room LAN."),
    Setting("port", 8470, "TCP port of the hub's HTTP API and dashboard."),
    Setting("mdns", True, "Advertise the hub on the LAN with mDNS/DNS-SD (_c1hub._tcp)."),
    Setting(
        "mdns_interfaces",
        None,
        "Comma-separated interface addresses for mDNS (default: the machine's LAN interfaces).",
    ),
    Setting("wilayah", None, "Polling-station master JSON (wilayah-2024.json) for R11 + progress."),
    Setting("root", False, "Run as the national stand-in: the root of the tree, no upstream."),
    Setting("upstream", None, "URL of the upstream hub or national server to forward to."),
    Setting("upstream_kbps", 0, "Cap on upstream bandwidth in kilobytes/second (0 = no cap)."),
    Setting("max_body", 16 * 1024 * 1024, "Largest request body accepted, in bytes."),
    Setting("max_batch", 5000, "Most records accepted in one push."),
    Setting("approve_all", False, "TEST ONLY: approve every device on first contact."),
    Setting(
        "examine_workers",
        "processes",
        "How pushed records are checked: 'processes' (two worker processes, the default) or "
        "'threads' (two threads: the checks hold the GIL, so this is slower; for measuring).",
    ),
]


SETTINGS_BY_NAME: dict[str, Setting] = by_name(SETTINGS)


@dataclass(frozen=True, slots=True)
class HubConfig:
    data_dir: Path
    host: str = "0.0.0.0"
    port: int = 8470
    mdns: bool = True
    mdns_interfaces: tuple[str, ...] | None = None
    wilayah: Path | None = None
    root: bool = False
    upstream: str | None = None
    upstream_kbps: int = 0
    max_body: int = 16 * 1024 * 1024
    max_batch: int = 5000
    approve_all: bool = False
    examine_workers: str = "processes"

    def __post_init__(self) -> None:
        if self.examine_workers not in ("processes", "threads"):
            raise ValueError("examine_workers must be 'processes' or 'threads'")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not 0..65535")
        if self.root and self.upstream:
            raise ValueError("a root (national stand-in) has no upstream")
        if self.max_batch < 1 or self.max_body < 1024:
            raise ValueError("max_batch must be >= 1 and max_body >= 1024")
        if self.upstream is not None and not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream {self.upstream!r} must be a URL like http://ADDRESS:8470")
        if self.upstream_kbps < 0:
            raise ValueError("upstream_kbps must be >= 0")


assert {s.name for s in SETTINGS} == {f.name for f in fields(HubConfig)}
