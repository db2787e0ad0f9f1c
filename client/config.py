"""Settings of the operator laptop, declared once.

Each setting has one declaration in ``SETTINGS`` (``hub.shared.settings.Setting``, the one
setting class of both programs): its name, default, environment variable and help text. The
CLI builds its options from these declarations and then one frozen ``ClientConfig``
(``ClientConfig.build``); nothing below the CLI reads the environment or the command line.
docs/configuration.md documents every entry of ``SETTINGS`` (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.protocol.errors import ProtocolError
from hub.protocol.wilayah import Master
from hub.shared.master import load_master
from hub.shared.settings import Setting, by_name

from .errors import ConfigError, InputError

LANGS = ("id", "en")


SETTINGS: list[Setting] = [
    Setting(
        "data_dir",
        "~/.local/share/c1client",
        "Directory holding this laptop's key (node.key) and its local store (client.db).",
        env="C1CLIENT_DATA",
    ),
    Setting(
        "lang",
        "id",
        "Language of messages: id (Bahasa Indonesia) or en (English).",
        env="C1_LANG",
    ),
    Setting(
        "wilayah",
        None,
        "Polling-station master (wilayah JSON). With it, an entry for a TPS that does not "
        "exist is rejected (rule R11).",
        env="C1_WILAYAH",
    ),
    Setting(
        "batch_size",
        500,
        "Entries saved per transaction by `enter` (1..10000).",
        env="C1CLIENT_BATCH_SIZE",
    ),
    Setting(
        "busy_timeout",
        30.0,
        "Seconds to wait for another c1client process that is writing to the same store.",
        env="C1CLIENT_BUSY_TIMEOUT",
    ),
    Setting(
        "hello_timeout",
        3.0,
        "Seconds a hub candidate has to answer its hello in a sync round (0.5..60). All "
        "candidates are asked at once; one that does not answer is reported in the round's "
        "errors and does not hold the round up longer than this.",
        env="C1CLIENT_HELLO_TIMEOUT",
    ),
    Setting(
        "partial_max_age",
        7 * 24 * 3600,
        "Seconds after its last write that an unfinished copy of a page in DATA/blobs/tmp "
        "(left by a crash) is removed, at the start of a sync round or of the station.",
        env="C1CLIENT_PARTIAL_MAX_AGE",
    ),
    Setting(
        "progress_after",
        1000,
        "`enter` reports progress on stderr once this many entries were read (always when "
        "stderr is a terminal).",
        env="C1CLIENT_PROGRESS_AFTER",
    ),
]

SETTINGS_BY_NAME: dict[str, Setting] = by_name(SETTINGS)


def setting(name: str) -> Setting:
    return SETTINGS_BY_NAME[name]


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything a c1client command needs to know, validated."""

    data_dir: Path
    lang: str = "id"
    wilayah: Path | None = None
    batch_size: int = 500
    busy_timeout: float = 30.0
    hello_timeout: float = 3.0
    progress_after: int = 1000
    partial_max_age: float = 7 * 24 * 3600
    verbose: int = 0

    @classmethod
    def build(
        cls,
        *,
        data_dir: Path | str | None = None,
        lang: str | None = None,
        wilayah: Path | str | None = None,
        batch_size: int | None = None,
        busy_timeout: float | None = None,
        hello_timeout: float | None = None,
        progress_after: int | None = None,
        partial_max_age: float | None = None,
        verbose: int = 0,
    ) -> ClientConfig:
        """Validate values (``None`` means the declared default) into a config."""

        def pick(name: str, value: Any) -> Any:
            return setting(name).default if value is None else value

        data = Path(pick("data_dir", data_dir)).expanduser().absolute()
        lang_v = str(pick("lang", lang)).lower()
        if lang_v not in LANGS:
            raise ConfigError(
                f"language {lang_v!r} is not supported (use id or en)",
                f"bahasa {lang_v!r} tidak dikenal (pakai id atau en)",
            )
        batch = int(pick("batch_size", batch_size))
        if not 1 <= batch <= 10_000:
            raise ConfigError(
                f"batch size {batch} is outside 1..10000",
                f"ukuran batch {batch} di luar 1..10000",
            )
        busy = float(pick("busy_timeout", busy_timeout))
        if not 0 <= busy <= 3600:
            raise ConfigError(
                f"busy timeout {busy} s is outside 0..3600",
                f"batas tunggu {busy} detik di luar 0..3600",
            )
        hello = float(pick("hello_timeout", hello_timeout))
        if not 0.5 <= hello <= 60:
            raise ConfigError(
                f"hello timeout {hello} s is outside 0.5..60",
                f"batas tunggu hello {hello} detik di luar 0.5..60",
            )
        progress = int(pick("progress_after", progress_after))
        if progress < 0:
            raise ConfigError(
                "progress_after must be 0 or more", "progress_after harus 0 atau lebih"
            )
        max_age = float(pick("partial_max_age", partial_max_age))
        if not max_age > 0:
            raise ConfigError(
                f"partial_max_age {max_age} s must be more than 0",
                f"partial_max_age {max_age} detik harus lebih dari 0",
            )
        w = pick("wilayah", wilayah)
        return cls(
            data_dir=data,
            lang=lang_v,
            wilayah=Path(w).expanduser() if w is not None else None,
            batch_size=batch,
            busy_timeout=busy,
            hello_timeout=hello,
            progress_after=progress,
            partial_max_age=max_age,
            verbose=verbose,
        )


def load_wilayah(path: Path | None) -> Master | None:
    """The polling-station master at ``path`` (None without one); InputError if unusable."""
    if path is None:
        return None
    try:
        return load_master(path)
    except (OSError, ProtocolError) as exc:
        raise InputError(
            f"{path} is not a usable polling-station master: {exc}",
            f"{path} bukan data wilayah yang dapat dipakai: {exc}",
        ) from None
