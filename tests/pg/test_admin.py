"""The admin commands on a receiver's folder while no receiver runs: they find the database in
the folder's ``db.url`` (written when a receiver started with ``--db``) and show the same root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hub.config import HubConfig
from hub.node import DB_FILE, Hub, init_data_dir
from hub.protocol import clock, enroll
from hub.protocol.identity import Identity

C1HUB = str(Path(sys.executable).parent / "c1hub")


def c1hub(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([C1HUB, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "C1_LANG": "en"}, check=False)  # fmt: skip


async def test_admin_commands_reach_the_database_of_a_stopped_receiver(
    tmp_path: Path, pg_dsn: str
) -> None:
    data = tmp_path / "recv"
    root = init_data_dir(data, "Nasional")
    laptop = Identity.generate()
    hub = Hub(HubConfig(data_dir=data, host="127.0.0.1", port=0, mdns=False, root=True,
                        db=pg_dsn, examine_workers="threads"))  # fmt: skip
    async with hub:
        req = enroll.make_request(laptop, root.public, "Ani", "laptop", clock.now_s())
        await hub.service.enroll(req)
    assert (data / DB_FILE).read_text().strip() == pg_dsn
    assert (data / DB_FILE).stat().st_mode & 0o777 == 0o600
    assert not (data / "hub.db").exists()  # nothing kept in the folder but the key and names
    p = c1hub("devices", "--data", data, "--json")
    assert p.returncode == 0, p.stderr
    (row,) = json.loads(p.stdout)
    assert (row["id"], row["name"], row["state"]) == (laptop.node_id, "Ani", "pending")
    p = c1hub("approve", "--data", data, laptop.node_id)
    assert p.returncode == 0, p.stderr
    p = c1hub("status", "--data", data, "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["devices"] == {"pending": 0, "approved": 1, "revoked": 0}
