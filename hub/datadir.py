"""The hub data folder's private parts: the folder's own mode, the admin token and the admin
socket.

The folder must be 0700 and ``admin.token`` 0600, like ``node.key`` (``hub.shared.keyfile``):
whoever reads the token can approve devices, whoever reads the folder can read ``hub.db``.
``check_private`` refuses anything looser with the ``chmod`` to run. The token is written
atomically with ``new_token`` (``c1hub init``, ``c1hub token rotate``); a running hub reads it
through a ``TokenFile``, which notices a rotation at the next admin request.

The admin socket (``admin.sock``, 0600) is where a running hub takes the admin commands of
its own machine (``c1hub approve`` ...): it never crosses a network. ``bind_admin_socket``
replaces a stale socket only when no hub answers on it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from hub.errors import HubError, NotPrivate

TOKEN_FILE = "admin.token"
ADMIN_SOCKET = "admin.sock"
_SUN_PATH_MAX = 107  # bytes of a Unix socket path (sun_path is 108 with its NUL)


def check_private(data_dir: Path, *, token: bool = True) -> None:
    """Raise ``NotPrivate`` (with the ``chmod`` to run) when ``data_dir`` or, with ``token``,
    its ``admin.token`` is readable or writable by group or others."""
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        raise NotPrivate(
            f"the data folder {data_dir} is open to other users (mode {mode:o}): they could "
            f"read hub.db and the admin token; run: chmod 700 {data_dir}"
        )
    path = data_dir / TOKEN_FILE
    if token and path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise NotPrivate(
                f"{path} is readable or writable by other users (mode {mode:o}); run: chmod 600 "
                f"{path}, then c1hub token rotate --data {data_dir} (others may have read it)"
            )


def make_private(data_dir: Path) -> None:
    """Create ``data_dir`` (and its parents) if needed and set it to 0700."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically, mode 0600, durably (file and folder)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def new_token(data_dir: Path) -> Path:
    """Write a fresh admin token (``c1hub init``, ``c1hub token rotate``); its path."""
    path = data_dir / TOKEN_FILE
    write_private(path, secrets.token_urlsafe(32) + "\n")
    return path


def read_token(data_dir: Path) -> str:
    """The admin token, refused (``NotPrivate``) when others may read it."""
    check_private(data_dir)
    return (data_dir / TOKEN_FILE).read_text().strip()


class TokenFile:
    """The admin token as a running hub sees it: read again whenever the file changed
    (``c1hub token rotate`` replaces it), so a rotation takes effect at the next request.
    ``current()`` raises ``NotPrivate`` while the file is open to others, ``OSError`` while it
    is missing; the caller refuses the request then."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.path = data_dir / TOKEN_FILE
        self._seen: tuple[int, int, int, int] | None = None
        self._token = ""

    def current(self) -> str:
        st = self.path.stat()
        seen = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            check_private(self.data_dir)
            self._token = self.path.read_text().strip()
            self._seen = seen
        if stat.S_IMODE(st.st_mode) & 0o077:
            check_private(self.data_dir)  # chmod-ed open after it was read
        return self._token


@contextlib.contextmanager
def socket_path(data_dir: Path) -> Iterator[str]:
    """A path to ``data_dir/admin.sock`` that fits a Unix socket address: the plain path, or
    for a deep folder the same through ``/proc/self/fd`` (Linux) while the context lasts."""
    path = str(data_dir / ADMIN_SOCKET)
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield path
        return
    fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{ADMIN_SOCKET}"
    finally:
        os.close(fd)


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
        return True


class AdminSocket:
    """A listening Unix socket at ``data_dir/admin.sock``, mode 0600 (``sock`` for
    ``aiohttp.web.SockSite``). A socket left there by a hub that died is replaced; a file that
    is not a socket, or a socket some process answers on, is not touched (``HubError``).
    ``close()`` removes the file if it is still this socket's."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / ADMIN_SOCKET
        with socket_path(data_dir) as path:
            try:
                st = os.lstat(self.path)
            except FileNotFoundError:
                pass
            else:
                if not stat.S_ISSOCK(st.st_mode):
                    raise HubError(f"{self.path} is in the way and is not a socket; move it away")
                if _answers(path):
                    raise HubError(f"something already answers on {self.path}; stop it first")
            tmp_name = f".{ADMIN_SOCKET}.{secrets.token_hex(4)}"
            tmp = data_dir / tmp_name
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.bind(path[: -len(ADMIN_SOCKET)] + tmp_name)  # the folder is 0700:
                os.chmod(tmp, 0o600)  # nobody else can reach it meanwhile
                os.replace(tmp, self.path)
                self._ino = os.lstat(self.path).st_ino
                self.sock.listen(64)
            except BaseException:
                self.sock.close()
                tmp.unlink(missing_ok=True)
                raise
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            if os.lstat(self.path).st_ino == self._ino:
                self.path.unlink()
