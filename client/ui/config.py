"""Settings of ``c1client ui``, declared once (like ``client.config.SETTINGS``).

docs/configuration.md lists every entry of ``SETTINGS`` (a test checks it). Settings shared
with the other commands (data folder, language, master, busy timeout) come from
``client.config``; these are the station's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from client.config import ClientConfig
from client.errors import ConfigError
from hub.protocol import entry
from hub.shared.settings import Setting

DEFAULT_PORT = 8471
DEFAULT_ELECTION = "pemilu-2024"

SETTINGS: list[Setting] = [
    Setting(
        "port", DEFAULT_PORT, "Port of the station on 127.0.0.1 (0: any free).", env="C1UI_PORT"
    ),
    Setting(
        "operator",
        None,
        "Operator name to sign in with (otherwise the page asks for it).",
        env="C1UI_OPERATOR",
    ),
    Setting(
        "scans_dir",
        None,
        "Folder where the room's scanner drops page files: offered newest first.",
        env="C1UI_SCANS",
    ),
    Setting(
        "election",
        DEFAULT_ELECTION,
        "Election id written into every entry.",
        env="C1UI_ELECTION",
    ),
    Setting(
        "max_scan_mb",
        20,
        "Largest page file accepted, in MiB (1..200).",
        env="C1UI_MAX_SCAN_MB",
    ),
]
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True, slots=True)
class UiConfig:
    """Everything the station needs, validated; ``client`` holds the shared settings."""

    client: ClientConfig
    port: int = DEFAULT_PORT
    operator: str | None = None
    scans_dir: Path | None = None
    election: str = DEFAULT_ELECTION
    max_scan_mb: int = 20
    hub_urls: tuple[str, ...] = ()
    mdns_interfaces: list[str] | None = None
    open_browser: bool = True
    sync: bool = True

    @classmethod
    def build(
        cls,
        client: ClientConfig,
        *,
        port: int | None = None,
        operator: str | None = None,
        scans_dir: Path | str | None = None,
        election: str | None = None,
        max_scan_mb: int | None = None,
        hub_urls: tuple[str, ...] = (),
        mdns_interfaces: list[str] | None = None,
        open_browser: bool = True,
        sync: bool = True,
    ) -> UiConfig:
        def pick(name: str, value: object) -> object:
            return SETTINGS_BY_NAME[name].default if value is None else value

        port_v = int(str(pick("port", port)))
        if not 0 <= port_v <= 65535:
            raise ConfigError(
                f"port {port_v} is outside 0..65535", f"port {port_v} di luar 0..65535"
            )
        op = operator.strip() if operator else None
        if op is not None and (len(op) > entry.MAX_OPERATOR or any(ord(c) < 32 for c in op)):
            raise ConfigError(
                f"operator name must be 1..{entry.MAX_OPERATOR} printable characters",
                f"nama operator harus 1..{entry.MAX_OPERATOR} karakter yang dapat dicetak",
            )
        scans = Path(scans_dir).expanduser() if scans_dir else None
        if scans is not None and not scans.is_dir():
            raise ConfigError(
                f"scan folder {scans} does not exist", f"folder pindaian {scans} tidak ada"
            )
        el = str(pick("election", election))
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", el):  # entry.py's rule
            raise ConfigError(
                f"election {el!r} is not an id like 'pemilu-2024'",
                f"election {el!r} bukan kode seperti 'pemilu-2024'",
            )
        mb = int(str(pick("max_scan_mb", max_scan_mb)))
        if not 1 <= mb <= 200:
            raise ConfigError(
                f"max scan size {mb} MiB is outside 1..200",
                f"batas ukuran pindaian {mb} MiB di luar 1..200",
            )
        return cls(
            client=client,
            port=port_v,
            operator=op or None,
            scans_dir=scans,
            election=el,
            max_scan_mb=mb,
            hub_urls=tuple(u if "://" in u else f"http://{u}" for u in hub_urls),
            mdns_interfaces=mdns_interfaces,
            open_browser=open_browser,
            sync=sync,
        )
