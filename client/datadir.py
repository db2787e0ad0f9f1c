"""A laptop's data folder: its key (``node.key``) and its store (``client.db``), made once by
``c1client init`` and opened by every other command.

The folder is private (0700), the key and the database 0600. A store is bound to the key it was
made with (``meta.public``): a store without its key is refused (a new key could not continue
the signed log), and so is another key. ``init`` twice with the same name changes nothing; with
another name it is refused (a laptop keeps its name). An existing ``node.key`` without a store
(restored from a backup) is used, never replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hub.protocol import record, text
from hub.protocol.errors import SchemaError
from hub.protocol.identity import Identity
from hub.shared.db import Database
from hub.shared.keyfile import KEY_FILE, load_or_create

from .db import DB_FILE, open_database, read_meta, write
from .errors import AlreadyInitialisedError, IdentityError, NotInitialisedError, StoreError

log = logging.getLogger(__name__)

MAX_NAME = text.MAX_NAME


@dataclass(frozen=True, slots=True)
class Opened:
    """An open data folder: its database, key and laptop name."""

    db: Database
    identity: Identity
    data_dir: Path
    name: str


def check_name(name: str) -> str:
    """The laptop's name as it is kept: 1..``MAX_NAME`` characters without the spaces around
    them, and no control, line-break or bidi character anywhere (``hub.protocol.text``, the
    rule the hub applies at enrollment). StoreError ``bad_entry`` otherwise."""
    if text.refused_at(name) < 0:
        name = name.strip()
    try:
        text.check_name(name, max_len=MAX_NAME)
    except SchemaError as exc:
        raise StoreError(
            f"the laptop name is refused: {exc.message}",
            f"nama laptop ditolak: {exc.pesan}",
            code="bad_entry",
        ) from None
    if not name:
        raise StoreError(
            "the laptop name is refused: it is empty",
            "nama laptop ditolak: kosong",
            code="bad_entry",
        )
    return name


async def create(
    data_dir: Path, name: str, *, now: int, busy_timeout: float = 30.0
) -> tuple[Opened, bool]:
    """Initialise ``data_dir`` with a key and a store named ``name``; ``(opened, created)``."""
    name = check_name(name)
    try:
        if not data_dir.exists():
            data_dir.mkdir(parents=True, mode=0o700)
            os.chmod(data_dir, 0o700)
        elif not data_dir.is_dir():
            raise StoreError(f"{data_dir} is not a directory", f"{data_dir} bukan direktori")
        elif data_dir.stat().st_mode & 0o077:
            log.warning("data directory %s is accessible by other users", data_dir)
    except OSError as exc:
        raise StoreError(
            f"cannot make the data folder {data_dir}: {exc.strerror or exc}",
            f"folder data {data_dir} tidak dapat dibuat: {exc.strerror or exc}",
        ) from None
    db_path = data_dir / DB_FILE
    if db_path.exists() and not (data_dir / KEY_FILE).exists():
        raise _missing_key(data_dir)
    ident, key_created = _key(data_dir)
    if not key_created:
        log.info("using the existing key in %s", data_dir / KEY_FILE)
    # Create the file 0600 first: SQLite gives its -wal and -shm files the same mode.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = await open_database(db_path, busy_timeout)
    try:
        created = await _claim(db, ident, name, now, data_dir)
    except BaseException:
        await db.close()
        raise
    return Opened(db, ident, data_dir, name), created


async def open_dir(data_dir: Path, *, busy_timeout: float = 30.0) -> Opened:
    """Open an initialised data folder (NotInitialisedError if it is not)."""
    db_path = data_dir / DB_FILE
    if not db_path.exists():
        raise NotInitialisedError(
            f"{data_dir} is not initialised: run `c1client init --data {data_dir} --name NAME`",
            f"{data_dir} belum diinisialisasi: jalankan "
            f"`c1client init --data {data_dir} --name NAMA`",
        )
    if not (data_dir / KEY_FILE).exists():
        raise _missing_key(data_dir)
    ident, _ = _key(data_dir)
    db = await open_database(db_path, busy_timeout)
    try:
        async with db.reader() as conn:
            meta = await read_meta(conn)
        if "name" not in meta:
            raise NotInitialisedError(
                f"{data_dir} is not initialised: run `c1client init`",
                f"{data_dir} belum diinisialisasi: jalankan `c1client init`",
            )
        _check_key(meta, ident, data_dir)
    except BaseException:
        await db.close()
        raise
    return Opened(db, ident, data_dir, meta["name"])


async def _claim(db: Database, ident: Identity, name: str, now: int, data_dir: Path) -> bool:
    """Write the store's identity on first ``init``; check it on later ones."""
    async with write(db) as conn:
        meta = await read_meta(conn)
        if "name" in meta:
            _check_key(meta, ident, data_dir)
            if meta["name"] != name:
                raise AlreadyInitialisedError(
                    f"already initialised as {meta['name']!r} (node id {ident.node_id}); "
                    "a laptop's name cannot be changed",
                    f"sudah diinisialisasi dengan nama {meta['name']!r} (id node "
                    f"{ident.node_id}); nama laptop tidak dapat diubah",
                )
            return False
        await conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("name", name),
                ("public", ident.public.hex()),
                ("node_id", ident.node_id),
                ("created_at", str(now)),
                ("head_seq", "0"),
                ("head_hash", record.GENESIS.hex()),
            ],
        )
        return True


def _key(data_dir: Path) -> tuple[Identity, bool]:
    try:
        return load_or_create(data_dir)
    except (OSError, ValueError) as exc:
        raise IdentityError(
            f"cannot use the node key: {exc}", f"kunci node tidak dapat dipakai: {exc}"
        ) from None


def _missing_key(data_dir: Path) -> IdentityError:
    return IdentityError(
        f"{data_dir / KEY_FILE} is missing but the store exists: restore node.key from its "
        "backup (a new key could not continue this laptop's signed log)",
        f"{data_dir / KEY_FILE} hilang padahal penyimpanan ada: pulihkan node.key dari "
        "cadangan (kunci baru tidak dapat melanjutkan log bertanda tangan laptop ini)",
    )


def _check_key(meta: dict[str, str], ident: Identity, data_dir: Path) -> None:
    if meta.get("public") != ident.public.hex():
        raise IdentityError(
            f"{data_dir / KEY_FILE} is not the key this store was created with "
            f"(store {meta.get('node_id')}, key {ident.node_id})",
            f"{data_dir / KEY_FILE} bukan kunci pembuat penyimpanan ini "
            f"(penyimpanan {meta.get('node_id')}, kunci {ident.node_id})",
        )
