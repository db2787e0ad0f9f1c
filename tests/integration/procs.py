"""Real processes for integration tests: ``c1hub`` and ``c1client`` on 127.0.0.1.

Every process started here is killed when its ``Procs`` is closed (the ``procs`` fixture in
conftest does it), so a failing test leaves nothing running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
C1HUB = str(BIN / "c1hub")
C1CLIENT = str(BIN / "c1client")


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


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class HubProc:
    """A ``c1hub serve`` (or ``national``) process on 127.0.0.1."""

    def __init__(self, data: Path, *, national: bool = False, port: int | None = None,
                 extra: tuple[str, ...] = ()):  # fmt: skip
        self.data = data
        self.national = national
        self.port = port or free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"{data.name}.log"
        if not (data / "node.key").exists():
            run(C1HUB, "init", "--data", data, "--name", data.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> HubProc:
        cmd = [C1HUB, "-v", "national" if self.national else "serve", "--data", str(self.data),
               "--host", "127.0.0.1", "--port", str(self.port), *self.extra]  # fmt: skip
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

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None


class Procs:
    """Owns every process a test starts."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.hubs: list[HubProc] = []
        self.others: list[subprocess.Popen[bytes]] = []

    def hub(self, name: str, **kw: Any) -> HubProc:
        h = HubProc(self.tmp / name, **kw)
        self.hubs.append(h)
        return h

    def laptop(self, name: str) -> Path:
        data = self.tmp / name
        run(C1CLIENT, "init", "--data", data, "--name", name)
        return data

    def spawn(self, *args: str | Path, log: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        p = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, "C1_LANG": "en"})  # fmt: skip
        self.others.append(p)
        return p

    def close(self) -> None:
        for p in self.others:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        for h in self.hubs:
            if h.proc is not None and h.proc.poll() is None:
                h.proc.kill()
                h.proc.wait(timeout=30)


def wait_for(check: Any, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll ``check()`` until truthy (a bounded wait for background work, not a speed test)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
