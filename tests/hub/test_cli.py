"""``c1hub``'s admin commands on a stopped hub, in-process: results, messages, exit codes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hub.cli import main
from hub.config import HubConfig
from hub.node import init_data_dir, open_offline
from hub.protocol.identity import Identity
from tests.helpers import chain, forms


def c1hub(*args: str | Path) -> Result:
    result = CliRunner(env={"C1HUB_DATA": None}).invoke(main, [str(a) for a in args])
    assert isinstance(result.exception, SystemExit | None), result.exception  # no traceback
    return result


async def _fill(data: Path, laptop: Identity, forked: Identity) -> None:
    async with open_offline(HubConfig(data_dir=data, mdns=False)) as hub:
        await hub.push([r.raw for r in chain(laptop, forms(3, seed=1))])
        a = chain(forked, forms(2, seed=2))
        b = chain(forked, forms(1, seed=3), start=2, prev=a[0].hash)
        await hub.push([r.raw for r in a])
        await hub.push([b[0].raw])  # a second seq 2: a fork


@pytest.fixture
def stopped_hub(tmp_path: Path) -> tuple[Path, Identity, Identity]:
    data = tmp_path / "hub"
    init_data_dir(data, "Ruang Uji")
    laptop, forked = Identity.generate(), Identity.generate()
    asyncio.run(_fill(data, laptop, forked))
    return data, laptop, forked


def test_admin_commands_on_a_stopped_hub(stopped_hub: tuple[Path, Identity, Identity]) -> None:
    data, laptop, forked = stopped_hub
    r = c1hub("devices", "--data", data)
    assert r.exit_code == 0 and "2 pending" in r.output and "FORK!" in r.output
    rows = json.loads(c1hub("devices", "--data", data, "--json").output)
    assert {row["id"]: row["forked"] for row in rows} == {laptop.node_id: False,
                                                           forked.node_id: True}  # fmt: skip
    r = c1hub("approve", "--data", data, laptop.node_id.lower())
    assert r.exit_code == 0 and r.output.startswith(f"approved {laptop.node_id} ()")
    s = json.loads(c1hub("status", "--data", data, "--json").output)
    assert s["entries"] == {"accepted": 3, "held": 2, "total": 5}
    # The forked device was never approved: its fork is evidence, reported apart.
    assert (s["forks"], s["forks_unapproved"]) == (0, 1)
    assert s["upstream"]["state"] == "none"
    r = c1hub("revoke", "--data", data, laptop.public.hex())
    assert r.exit_code == 0 and f"revoked {laptop.node_id} () after seq 3" in r.output
    text = c1hub("status", "--data", data).output
    assert "entries: 3 accepted, 2 held" in text
    assert "FORKS" not in text and "forks of keys never approved: 1" in text


def test_approving_a_forked_device_offline_is_a_message_and_exit_1(
    stopped_hub: tuple[Path, Identity, Identity],
) -> None:
    data, _laptop, forked = stopped_hub
    r = c1hub("approve", "--data", data, forked.node_id)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith(f"error: device {forked.node_id} has a fork; it cannot be approved")


def test_failures_are_messages_with_exit_1_and_json_errors(tmp_path: Path) -> None:
    nothing = tmp_path / "nothing"
    r = c1hub("status", "--data", nothing)
    assert r.exit_code == 1 and "holds no hub; run: c1hub init" in r.stderr
    r = c1hub("status", "--data", nothing, "--json")
    assert r.exit_code == 1
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "not_initialised" and "c1hub init" in err["reason"]
    data = tmp_path / "hub"
    init_data_dir(data, "R")
    r = c1hub("approve", "--data", data, "NOPE-NOPE-NOPE")
    assert r.exit_code == 1 and "no device 'NOPE-NOPE-NOPE' at this hub" in r.stderr
    r = c1hub("export", "--data", nothing)
    assert r.exit_code == 1 and "does not exist" in r.stderr
    r = c1hub("status")  # bad usage: click's own exit code
    assert r.exit_code == 2 and "Missing option '--data'" in r.stderr


def test_an_open_folder_or_token_is_exit_2_with_the_chmod(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    init_data_dir(data, "R")
    token = data / "admin.token"
    token.chmod(0o604)
    for args in (["devices"], ["status", "--json"], ["approve", "AAAA-AAAA-AAAA"]):
        r = c1hub(*args, "--data", data)
        assert r.exit_code == 2 and f"run: chmod 600 {token}" in r.stderr, (args, r.output)
    assert json.loads(c1hub("status", "--data", data, "--json").stdout)["error"]["code"] == (
        "not_private"
    )
    token.chmod(0o600)
    data.chmod(0o711)
    r = c1hub("devices", "--data", data)
    assert r.exit_code == 2 and f"run: chmod 700 {data}" in r.stderr, r.output
    r = c1hub("token", "rotate", "--data", data)
    assert r.exit_code == 2 and f"run: chmod 700 {data}" in r.stderr, r.output
    data.chmod(0o700)
    assert c1hub("devices", "--data", data).exit_code == 0


def test_token_rotate_replaces_even_an_open_token_and_never_prints_it(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    init_data_dir(data, "R")
    token = data / "admin.token"
    old = token.read_text().strip()
    token.chmod(0o644)  # the fix for a token others may have read is a new one
    r = c1hub("token", "rotate", "--data", data)
    new = token.read_text().strip()
    assert r.exit_code == 0 and str(token) in r.stdout, r.output
    assert new != old and len(new) >= 40 and new not in r.output and old not in r.output
    assert token.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in data.iterdir()) == ["admin.token", "name", "node.key"]
    r = c1hub("token", "rotate", "--data", tmp_path / "nothing")
    assert r.exit_code == 1 and "holds no hub" in r.stderr
    assert not (tmp_path / "nothing").exists()


def test_devices_come_in_pages_with_limit_and_after(
    stopped_hub: tuple[Path, Identity, Identity],
) -> None:
    data, _laptop, _forked = stopped_hub
    whole = [row["id"] for row in json.loads(c1hub("devices", "--data", data, "--json").output)]
    r = c1hub("devices", "--data", data, "--limit", "1")
    assert r.exit_code == 0 and whole[0] in r.output and whole[1] not in r.output
    assert f"more: c1hub devices --data {data} --limit 1 --after {whole[0]}" in r.output
    rest = json.loads(c1hub("devices", "--data", data, "--json", "--after", whole[0]).output)
    assert [row["id"] for row in rest] == whole[1:]
    r = c1hub("devices", "--data", data, "--after", "NOPE-NOPE-NOPE")
    assert r.exit_code == 1 and "no device 'NOPE-NOPE-NOPE'" in r.output
    assert c1hub("devices", "--data", data, "--limit", "0").exit_code == 2
