"""Key files: node.key is private, never overwritten, and refused when others can read it."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from hub.protocol.identity import Identity
from hub.shared import keyfile


def test_key_file_is_private(tmp_path: Path) -> None:
    ident = Identity.generate()
    path = tmp_path / "node.key"
    keyfile.save(ident, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = keyfile.load(path)
    assert loaded.public == ident.public
    assert loaded.node_id == ident.node_id


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    keyfile.save(Identity.generate(), path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keyfile.save(Identity.generate(), path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o700 | 0o010])
def test_load_refuses_a_key_others_can_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.key"
    keyfile.save(Identity.generate(), path)
    os.chmod(path, mode)
    with pytest.raises(PermissionError, match=f"chmod 600 {re.escape(str(path))}"):
        keyfile.load(path)


def test_load_accepts_owner_only_modes(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    ident = Identity.generate()
    keyfile.save(ident, path)
    os.chmod(path, 0o400)
    assert keyfile.load(path).public == ident.public


@pytest.mark.parametrize("content", ["hello\n", "ab" * 31 + "\n", "", "ab" * 33])
def test_load_refuses_a_file_that_is_not_a_key(tmp_path: Path, content: str) -> None:
    path = tmp_path / "node.key"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match="does not hold a c1hub key"):
        keyfile.load(path)


def test_load_or_create(tmp_path: Path) -> None:
    first, created = keyfile.load_or_create(tmp_path)
    assert created
    assert stat.S_IMODE((tmp_path / keyfile.KEY_FILE).stat().st_mode) == 0o600
    again, created = keyfile.load_or_create(tmp_path)
    assert not created
    assert again.public == first.public
