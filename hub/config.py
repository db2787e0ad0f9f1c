"""Hub settings: each declared once, with its default and help text.

The CLI builds one frozen ``HubConfig`` and validates it; core objects receive plain values.
docs/configuration.md lists every setting (a test checks it stays complete).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from hub.protocol.quota import Quotas
from hub.shared.settings import Setting, by_name

MAX_UPSTREAM_LANES = 16  # scan chunks in flight upstream at most (each up to 1 MiB in memory)

SETTINGS: list[Setting] = [
    Setting("data_dir", None, "Hub data folder (env C1HUB_DATA).", env="C1HUB_DATA"),
    Setting("host", "0.0.0.0", "Address to listen on. 0.0.0.0 = every interface of the room LAN."),
    Setting("port", 8470, "TCP port of the hub's HTTP API and console."),
    Setting("mdns", True, "Advertise the hub on the LAN with mDNS/DNS-SD (_c1hub._tcp)."),
    Setting(
        "mdns_interfaces",
        None,
        "Comma-separated interface addresses for mDNS (default: the machine's LAN interfaces).",
    ),
    Setting("wilayah", None, "Polling-station master JSON (wilayah-2024.json) for R11 + progress."),
    Setting("root", False, "Run as the national stand-in: the root of the tree, no upstream."),
    Setting("upstream", None, "URL of the upstream hub or national server to forward to."),
    Setting(
        "db",
        None,
        "Where entries are kept: empty = hub.db (SQLite) in the data folder; "
        "postgresql://USER@HOST/DB = a PostgreSQL database several receivers share "
        "(env C1HUB_DB; docs/scaling.md).",
        env="C1HUB_DB",
    ),
    Setting(
        "blobs",
        None,
        "Where scans are kept: empty = the data folder; s3://BUCKET?endpoint=URL = an "
        "S3-compatible object store (env C1HUB_BLOBS; docs/scaling.md).",
        env="C1HUB_BLOBS",
    ),
    Setting("upstream_kbps", 0, "Cap on upstream bandwidth in kilobytes/second (0 = no cap)."),
    Setting(
        "upstream_lanes",
        2,
        "Scan chunks in flight upstream at once without a cap (one under --upstream-kbps); "
        "raise it only for an upstream on a fast local network.",
    ),
    Setting("max_body", 16 * 1024 * 1024, "Largest request body accepted, in bytes."),
    Setting("max_batch", 5000, "Most records accepted in one push."),
    Setting("max_endorsements", 10000, "Most endorsements accepted in one push."),
    Setting(
        "max_inflight_bytes",
        64 * 1024 * 1024,
        "Most request-body bytes being received or handled at once, over all connections; a "
        "request that finds no room within body_timeout gets 503 busy.",
    ),
    Setting(
        "body_timeout",
        60,
        "Seconds a request body may wait for room under max_inflight_bytes, and then has to "
        "arrive whole; otherwise the connection is closed.",
    ),
    Setting(
        "header_timeout",
        10,
        "Seconds a connection has to send a whole request head, from its accept or the end "
        "of the previous reply; then it is closed.",
    ),
    Setting("keepalive_timeout", 15, "Seconds an idle keep-alive connection is kept open."),
    Setting(
        "max_connections",
        512,
        "Most client connections open at once (lowered to the open-file limit - 96); over it, "
        "the one waiting longest for a request is closed.",
    ),
    Setting(
        "max_pending_devices",
        1000,
        "Most devices pending (never approved) at once; past it a new enrollment gets 429 quota "
        "and the records of a new unknown key are refused (quota), making no device.",
    ),
    Setting(
        "max_held_records_per_device",
        5000,
        "Most records held (stored, not counted) from one device never approved; more are "
        "refused (quota): not stored, not receipted.",
    ),
    Setting(
        "max_held_bytes_per_device",
        32 * 1024 * 1024,
        "The same in bytes (the lengths of the signed records as stored).",
    ),
    Setting(
        "max_held_records",
        200_000,
        "Most records held from all devices never approved together.",
    ),
    Setting(
        "max_held_bytes",
        512 * 1024 * 1024,
        "The same in bytes, over all devices never approved together.",
    ),
    Setting(
        "partial_max_age",
        7 * 24 * 3600,
        "Seconds after its last chunk that an unfinished scan upload (blobs/tmp) is removed; "
        "a sender that comes back later sends that scan again from its start.",
    ),
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
    db: str | None = None
    blobs: str | None = None
    upstream_kbps: int = 0
    upstream_lanes: int = 2
    max_body: int = 16 * 1024 * 1024
    max_batch: int = 5000
    max_endorsements: int = 10000
    max_inflight_bytes: int = 64 * 1024 * 1024
    body_timeout: float = 60.0
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_connections: int = 512
    max_pending_devices: int = 1000
    max_held_records_per_device: int = 5000
    max_held_bytes_per_device: int = 32 * 1024 * 1024
    max_held_records: int = 200_000
    max_held_bytes: int = 512 * 1024 * 1024
    partial_max_age: float = 7 * 24 * 3600
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
        if self.max_endorsements < 0 or self.max_inflight_bytes < 1024:
            raise ValueError("max_endorsements must be >= 0 and max_inflight_bytes >= 1024")
        if min(self.body_timeout, self.header_timeout, self.keepalive_timeout) <= 0:
            raise ValueError("body_timeout, header_timeout and keepalive_timeout must be > 0")
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if min(self._quota_values()) < 0:
            raise ValueError("the quotas (max_pending_devices, max_held_*) must be >= 0")
        if self.upstream is not None and not self.upstream.startswith(("http://", "https://")):
            raise ValueError(f"--upstream {self.upstream!r} must be a URL like http://ADDRESS:8470")
        if self.db and not self.db.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"--db {self.db!r} must be a URL like postgresql://USER@HOST/DB")
        if self.blobs and not self.blobs.startswith("s3://"):
            raise ValueError(f"--blobs {self.blobs!r} must be a URL like s3://BUCKET?endpoint=URL")
        if self.upstream_kbps < 0:
            raise ValueError("upstream_kbps must be >= 0")
        if not 1 <= self.upstream_lanes <= MAX_UPSTREAM_LANES:
            raise ValueError(f"upstream_lanes must be 1..{MAX_UPSTREAM_LANES}")
        if self.partial_max_age <= 0:
            raise ValueError("partial_max_age must be > 0")

    def _quota_values(self) -> tuple[int, ...]:
        return (
            self.max_pending_devices,
            self.max_held_records_per_device,
            self.max_held_bytes_per_device,
            self.max_held_records,
            self.max_held_bytes,
        )

    @property
    def quotas(self) -> Quotas:
        """The quotas on what devices nobody approved make this hub keep."""
        return Quotas(*self._quota_values())


assert {s.name for s in SETTINGS} == {f.name for f in fields(HubConfig)}
