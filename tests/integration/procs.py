"""Real processes for integration tests: ``c1hub`` and ``c1client`` on 127.0.0.1.

Every process started here is killed when its ``Procs`` is closed (the ``procs`` fixture in
conftest does it), so a failing test leaves nothing running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hub.protocol import codec
from hub.protocol.identity import fingerprint
from hub.shared import keyfile

BIN = Path(sys.executable).parent
C1HUB = str(BIN / "c1hub")
C1CLIENT = str(BIN / "c1client")
REPO = Path(__file__).resolve().parents[2]


def terminate(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a process politely, then firmly; a no-op for None or one already gone."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run(*args: str | Path, check: bool = True, timeout: float = 300, **kw: Any) -> Any:
    """Run a command to completion; return the CompletedProcess (text mode)."""
    env = {**os.environ, "C1_LANG": "en"}
    p = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, **kw
    )
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
        )
    return p


def run_json(*args: str | Path) -> Any:
    return json.loads(run(*args, "--json").stdout)


def run_json_lines(*args: str | Path) -> list[Any]:
    """Run a command whose ``--json`` output is JSON lines (e.g. ``c1client list``)."""
    out = run(*args, "--json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def post_json(url: str, obj: Any, timeout: float = 10.0) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(obj).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def generate(count: int, seed: int, mistakes: float = 0.15) -> list[str]:
    """``count`` realistic forms as JSON lines (``c1client generate``)."""
    out = run(C1CLIENT, "generate", "--count", str(count), "--seed", str(seed),
              "--mistakes", str(mistakes)).stdout  # fmt: skip
    return [line for line in out.splitlines() if line.strip()]


def enter(data: Path, lines: list[str]) -> None:
    """Type ``lines`` (forms as JSON lines) on the laptop at ``data``; all must be saved."""
    run(C1CLIENT, "enter", "--data", data, "-", input="\n".join(lines) + "\n")


def sync(data: Path, *hub_urls: str, add_hub: bool = False) -> Any:
    """One ``c1client sync --once`` of the laptop at ``data`` (to each of ``hub_urls``, with
    ``--add-hub`` to enroll at another hub than the pinned one); its JSON report."""
    hubs = [a for u in hub_urls for a in ("--hub", u)]
    add = ["--add-hub"] if add_hub else []
    return run_json(C1CLIENT, "sync", "--data", data, *hubs, *add, "--once")


def laptop_hashes(data: Path) -> list[str]:
    """The hash of every entry the laptop at ``data`` holds, oldest first."""
    return [e["hash"] for e in run_json_lines(C1CLIENT, "list", "--data", data)]


def laptop_status(data: Path) -> Any:
    return run_json(C1CLIENT, "status", "--data", data)


def stored_hashes(data: Path) -> list[str]:
    """Every record hash in the hub.db at ``data`` (read-only; the hub may be running or not),
    one per stored row, so duplicates would show."""
    db = sqlite3.connect(f"file:{data / 'hub.db'}?mode=ro", uri=True, timeout=30)
    try:
        return [bytes(h).hex() for (h,) in db.execute("SELECT hash FROM records")]
    finally:
        db.close()


def pg_fetch(dsn: str, sql: str, *args: Any) -> list[Any]:
    """Rows of one query on the PostgreSQL database at ``dsn`` (its own connection)."""
    import asyncio

    import asyncpg

    async def go() -> list[Any]:
        con = await asyncpg.connect(dsn)
        try:
            return list(await con.fetch(sql, *args))
        finally:
            await con.close()

    return asyncio.run(go())


def pg_hashes(dsn: str) -> list[str]:
    """``stored_hashes`` of a hub whose entries are in PostgreSQL."""
    return [bytes(r[0]).hex() for r in pg_fetch(dsn, "SELECT hash FROM records")]


def call_msgpack(url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """GET (``body`` None) or POST a msgpack body; return (HTTP status, decoded reply), errors
    included (a 4xx reply is data here, not an exception)."""
    data = None if body is None else codec.pack(body)
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Accept", "application/msgpack")
    if data is not None:
        req.add_header("Content-Type", "application/msgpack")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, codec.unpack(r.read(), canonical=False)
    except urllib.error.HTTPError as exc:
        return exc.code, codec.unpack(exc.read(), canonical=False)


def laptop_public(data: Path) -> bytes:
    """A laptop's (or hub's) public key, read from its data folder."""
    return keyfile.load(data / keyfile.KEY_FILE).public


def kill9(p: subprocess.Popen[bytes]) -> None:
    """``kill -9`` a process started with ``Procs.spawn`` and reap it."""
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)


class HubProc:
    """A ``c1hub serve`` (or ``national``) process on 127.0.0.1."""

    def __init__(self, data: Path, *, national: bool = False, port: int | None = None,
                 extra: tuple[str, ...] = (), display_name: str | None = None,
                 db: str | None = None, same_key_as: Path | None = None,
                 host: str = "127.0.0.1"):  # fmt: skip
        self.data = data
        self.host = host
        self.national = national
        self.port = port or free_port()
        self.db = db  # a PostgreSQL URL: entries kept there (--db), else hub.db in the folder
        self.extra = extra + (("--db", db) if db else ())
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"{data.name}.log"
        if same_key_as is not None and not (data / "node.key").exists():
            # another receiver of the same root: the same key, copied (docs/scaling.md)
            data.mkdir(mode=0o700)
            shutil.copy2(same_key_as / "node.key", data / "node.key")
        if not (data / "node.key").exists() or same_key_as is not None:
            run(C1HUB, "init", "--data", data, "--name", display_name or data.name)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> HubProc:
        cmd = [C1HUB, "-v", "national" if self.national else "serve", "--data", str(self.data),
               "--host", self.host, "--port", str(self.port), *self.extra]  # fmt: skip
        if "--mdns" not in self.extra:
            cmd.append("--no-mdns")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/v1/hello", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"hub did not come up: {self.log.read_text()}") from None
                time.sleep(0.05)

    def status(self) -> Any:
        return get_json(self.url + "/v1/status")

    def stored_hashes(self) -> list[str]:
        """Every record hash this hub stores, one per row (in its hub.db, or its database)."""
        return stored_hashes(self.data) if self.db is None else pg_hashes(self.db)

    def head(self, origin: bytes) -> Any:
        """GET /v1/heads/{origin}: {"seq", "hash", "state", "forked", ...} for one laptop."""
        status, reply = call_msgpack(f"{self.url}/v1/heads/{origin.hex()}")
        assert status == 200, reply
        return reply

    @property
    def node_id(self) -> str:
        return fingerprint(laptop_public(self.data))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, text: str, timeout: float = 60.0, after: int = 0) -> None:
        """Wait until the hub's log (from byte offset ``after``) contains ``text``."""
        wait_for(lambda: text in self.log_text()[after:], timeout, f"{text!r} in {self.log}")

    def upstream(self) -> Any:
        """The ``upstream`` block of this hub's status."""
        return self.status()["upstream"]

    def devices(self) -> list[dict[str, Any]]:
        """``c1hub devices --json`` for this hub."""
        rows: list[dict[str, Any]] = run_json(C1HUB, "devices", "--data", self.data)
        return rows

    def device(self, name: str) -> dict[str, Any] | None:
        """The device enrolled here under ``name`` (a laptop's or hub's name), if any."""
        return next((d for d in self.devices() if d["name"] == name), None)

    def approve(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until a device called ``name`` has enrolled here, then approve it as the
        coordinator would (``c1hub approve``); return its row from before the approval."""
        found: list[dict[str, Any]] = []

        def enrolled() -> bool:
            d = self.device(name)
            if d is not None:
                found.append(d)
            return d is not None

        wait_for(enrolled, timeout, f"{name} to enroll at {self.data.name}", interval=0.3)
        run(C1HUB, "approve", "--data", self.data, "--as", found[-1]["role"], found[-1]["id"])
        return found[-1]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


class FaultProxyProc:
    """A fault-injecting reverse proxy (``tests/integration/faultproxy.py``) on 127.0.0.1,
    forwarding to ``target``. ``faults`` are its settings: p_busy, p_reset, p_drop, p_slow,
    slow_s, retry_after."""

    def __init__(self, log: Path, target: str, *, seed: int = 0, port: int | None = None,
                 faults: dict[str, float] | None = None):  # fmt: skip
        self.log = log
        self.target = target
        self.seed = seed
        self.port = port or free_port()
        self.faults = dict(faults or {})
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> FaultProxyProc:
        opts = [a for k, v in self.faults.items() for a in ("--" + k.replace("_", "-"), str(v))]
        cmd = [sys.executable, "-m", "tests.integration.faultproxy", "--listen", str(self.port),
               "--target", self.target, "--seed", str(self.seed), *opts]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"proxy exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                self.stats()
                return self
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"proxy did not come up: {self.log.read_text()}") from None
                time.sleep(0.05)

    def stats(self) -> Any:
        """``{"config", "counts", "paths", "log"}`` (see faultproxy.py)."""
        return get_json(self.url + "/__faults")

    def configure(self, **faults: float) -> Any:
        return post_json(self.url + "/__faults", faults)

    def stop(self) -> None:
        terminate(self.proc)
        self.proc = None


class Procs:
    """Owns every process a test starts."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.hubs: list[HubProc] = []
        self.proxies: list[FaultProxyProc] = []
        self.others: list[subprocess.Popen[bytes]] = []

    def hub(self, name: str, **kw: Any) -> HubProc:
        h = HubProc(self.tmp / name, **kw)
        self.hubs.append(h)
        return h

    def fault_proxy(self, name: str, target: str, **kw: Any) -> FaultProxyProc:
        p = FaultProxyProc(self.tmp / f"{name}.log", target, **kw)
        self.proxies.append(p)
        return p

    def laptop(self, name: str) -> Path:
        data = self.tmp / name
        run(C1CLIENT, "init", "--data", data, "--name", name)
        return data

    def spawn(self, *args: str | Path, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            p = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "C1_LANG": "en"})  # fmt: skip
        finally:
            if log:
                out.close()  # type: ignore[union-attr]  # the child has its own copy
        self.others.append(p)
        return p

    def close(self) -> None:
        for p in self.others:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        owned = [h.proc for h in self.hubs] + [x.proc for x in self.proxies]
        for proc in owned:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def wait_for(
    check: Any, timeout: float = 120.0, what: str = "condition", interval: float = 0.1
) -> None:
    """Poll ``check()`` until truthy (a bounded wait for background work, not a speed test)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
