"""A real PostgreSQL server for tests, started by the tests themselves.

``PostgresServer`` is a context manager: it finds Debian's PostgreSQL binaries
(``/usr/lib/postgresql/*/bin``, newest version first), ``initdb``s a cluster in a temporary
folder, starts it on a free TCP port of 127.0.0.1 with its Unix socket in that folder, waits
until it accepts connections, creates a database and gives its DSN; leaving the block stops the
server and removes the folder. PostgreSQL refuses to run as root: as root the folder is given
to the ``postgres`` user (Debian's package creates it) and the server runs as that user; as a
normal user it runs directly.

As a pytest plugin (``pytest_plugins`` in tests/conftest.py) it gives:

- ``postgres_server`` (session): one cluster for the whole run;
- ``pg_dsn`` (function): a fresh database on it for one test, dropped after.

When PostgreSQL is not installed the tests that need it are skipped with a loud message naming
them, except under CI (``CI=true``), where the fixture fails: CI must run them (.ci/services.sh
installs the package).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Server, free_port, missing

PG_GLOB = "/usr/lib/postgresql/*/bin"
START_TIMEOUT_S = 30.0
INSTALL_HINT = "apt-get install postgresql (or run .ci/services.sh as root)"


def find_bin_dir() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` folder holding initdb, postgres and pg_ctl."""
    found = []
    for d in Path("/").glob(PG_GLOB.lstrip("/")):
        if all((d / b).is_file() for b in ("initdb", "postgres", "pg_ctl")):
            with contextlib.suppress(ValueError):
                found.append((int(d.parent.name.split(".")[0]), d))
    return max(found)[1] if found else None


class PostgresServer(Server):
    """One throw-away PostgreSQL cluster: ``with PostgresServer() as pg: pg.dsn``."""

    def __init__(self, bin_dir: Path, *, settings: dict[str, str] | None = None):
        self.bin = bin_dir
        self.settings = {"max_connections": "60", "shared_buffers": "64MB", **(settings or {})}
        self.root = Path(tempfile.mkdtemp(prefix="c1hub-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "postgres.log"
        self._user: dict[str, Any] = {}
        self._dbs = itertools.count(1)
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root, and there is no 'postgres' user to run PostgreSQL as "
                    f"({INSTALL_HINT} creates it)"
                ) from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """A new cluster: initdb, start it, create the ``c1hub`` database."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        self.run()
        self.createdb("c1hub")

    def run(self) -> None:
        """Start the server (on a new free port the first time, on the same port after a
        ``stop``), and wait until it accepts connections."""
        for attempt in range(3):
            if not self.port or attempt:
                self.port = free_port()
            args = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                    "-h", "127.0.0.1", "-k", str(self.root)]  # fmt: skip
            for k, v in self.settings.items():
                args += ["-c", f"{k}={v}"]
            log = open(self.log, "ab")  # noqa: SIM115 - the child holds it; closed below
            try:
                self.proc = subprocess.Popen(
                    args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True, **self._user,
                )  # fmt: skip
            finally:
                log.close()
            if self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"PostgreSQL did not start; its log:\n{self.tail_log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            r = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                check=False,
            )
            if r.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (SIGINT: clean shutdown, sessions cut) or ``immediate``
        (SIGQUIT: no checkpoint, recovery from WAL at the next start, as after a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.run()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------

    def dsn(self, dbname: str = "c1hub") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        out = self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-d", dbname, "-c", sql)  # fmt: skip
        return out.strip()

    def createdb(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def dropdb(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def new_database(self) -> str:
        """A fresh, empty database on this server; returns its name."""
        name = f"t{os.getpid()}_{next(self._dbs)}"
        self.createdb(name)
        return name

    def tail_log(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _run(self, prog: str, *args: str) -> str:
        r = subprocess.run(
            [str(self.bin / prog), *args], capture_output=True, check=False,
            stdin=subprocess.DEVNULL, cwd=self.root, **self._user,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(
                f"{prog} failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()}"
            )
        return r.stdout.decode()


# -- pytest plugin ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(missing(f"PostgreSQL ({PG_GLOB}/initdb)", INSTALL_HINT))
    with PostgresServer(bin_dir) as pg:
        yield pg


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database for one test (dropped after): its DSN."""
    name = postgres_server.new_database()
    try:
        yield postgres_server.dsn(name)
    finally:
        if postgres_server.proc is not None:
            postgres_server.dropdb(name)
