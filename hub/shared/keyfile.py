"""A node's key on disk: ``node.key`` in its data folder, the Ed25519 seed in hex, mode 0600.

A key readable by other users is refused (like ssh does): whoever reads it can sign as this
node.
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.protocol.identity import Identity

KEY_FILE = "node.key"


def save(ident: Identity, path: Path) -> None:
    """Write the private key seed to ``path`` with mode 0600; refuse to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, ident.seed().hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: Path) -> Identity:
    """The key in ``path``: PermissionError if others may read it, ValueError if it is not a
    c1hub key."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(
            f"{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}"
        )
    raw = path.read_text().strip()
    try:
        seed = bytes.fromhex(raw)
    except ValueError:
        raise ValueError(f"{path} does not hold a c1hub key") from None
    if len(seed) != 32:
        raise ValueError(f"{path} does not hold a c1hub key")
    return Identity.from_seed(seed)


def load_or_create(data_dir: Path) -> tuple[Identity, bool]:
    """Load the identity in ``data_dir``, creating it on first run. Returns (identity, created)."""
    path = data_dir / KEY_FILE
    if path.exists():
        return load(path), False
    ident = Identity.generate()
    save(ident, path)
    return ident, True
