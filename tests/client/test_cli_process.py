"""``c1client`` as real processes: the installed entry point, concurrent writers, big inputs."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client.store import DB_FILE
from hub.protocol import entry, record
from hub.shared import generator

from .conftest import REPO, write_jsonl


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("C1_", "C1CLIENT_"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def c1client(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=240,
        **kw,
    )


def test_init_and_enter_in_real_processes(tmp_path: Path) -> None:
    data = tmp_path / "laptop"
    r = c1client("init", "--data", str(data), "--name", "Meja 3", "--lang", "en")
    assert r.returncode == 0, r.stderr
    assert "node id" in r.stdout
    form = next(
        generator.laptop_forms(
            1, seed=1, master=None, region="31", forms=("PPWP",), mistake_rate=0, operator="x"
        )
    )
    r = subprocess.run(
        [sys.executable, "-m", "client.cli", "enter", "-", "--data", str(data), "--json"],
        input=json.dumps(form),
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr
    assert [s["seq"] for s in json.loads(r.stdout)["saved"]] == [1]


def _forms(n: int, operator: str, seed: int) -> list[dict[str, Any]]:
    return list(
        generator.laptop_forms(
            n,
            seed=seed,
            master=None,
            region="31",
            forms=("PPWP", "DPD"),
            mistake_rate=0.2,
            operator=operator,
        )
    )


@pytest.mark.integration
def test_two_concurrent_enter_processes_keep_one_chain(tmp_path: Path) -> None:
    data = tmp_path / "laptop"
    assert c1client("init", "--data", str(data), "--name", "Meja 1").returncode == 0
    a = write_jsonl(tmp_path / "a.jsonl", _forms(200, "Operator A", 1))
    b = write_jsonl(tmp_path / "b.jsonl", _forms(200, "Operator B", 2))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "client.cli",
                "enter",
                str(f),
                "--data",
                str(data),
                "--batch-size",
                "2",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=REPO,
        )
        for f in (a, b)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    saved = [s["seq"] for out, _ in outs for s in json.loads(out)["saved"]]
    assert sorted(saved) == list(range(1, 401))  # no duplicate seq, no gap

    with contextlib.closing(sqlite3.connect(data / DB_FILE)) as c:
        raws = [bytes(r[0]) for r in c.execute("SELECT raw FROM entries ORDER BY seq")]
    prev = record.GENESIS
    operators: dict[str, int] = {}
    for i, raw in enumerate(raws, start=1):
        rec = record.decode(raw)
        rec.verify()
        assert (rec.seq, rec.prev) == (i, prev)
        prev = rec.hash
        op = entry.decode_body(rec.body)["operator"]
        operators[op] = operators.get(op, 0) + 1
    assert operators == {"Operator A": 200, "Operator B": 200}
    r = c1client("verify", "--data", str(data), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["entries"] == 400


@pytest.mark.slow
@pytest.mark.integration
def test_ten_thousand_entries_from_one_jsonl_file(tmp_path: Path) -> None:
    data = tmp_path / "laptop"
    assert c1client("init", "--data", str(data), "--name", "Meja 1").returncode == 0
    big = tmp_path / "big.jsonl"
    with big.open("w") as out:
        r = subprocess.run(
            [sys.executable, "-m", "client.cli", "generate", "--count", "10000", "--seed", "9"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=REPO,
            timeout=240,
        )
    assert r.returncode == 0, r.stderr
    assert big.read_text().count("\n") == 10_000

    r = c1client("enter", str(big), "--data", str(data), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["counts"]["saved"] == 10_000 and out["rejected"] == []
    assert [s["seq"] for s in out["saved"]] == list(range(1, 10_001))
    assert 0 < out["counts"]["flagged"] < 10_000
    progress = [x for x in r.stderr.splitlines() if x.startswith("dibaca ")]
    assert len(progress) >= 10  # one line per committed batch once the input is large
    assert progress[-1] == "dibaca 10000, disimpan 10000, ditolak 0"

    s = json.loads(c1client("status", "--data", str(data), "--json").stdout)
    assert (s["entries"], s["last_seq"], s["local_only"]) == (10_000, 10_000, 10_000)
    assert s["flagged"] == out["counts"]["flagged"]
    r = c1client("verify", "--data", str(data), "--lang", "en")
    assert r.returncode == 0 and r.stdout.strip() == "All 10000 entries verified."


@pytest.mark.parametrize("lang", ["id", "en"])
def test_interrupted_sync_exits_130_with_a_message(tmp_path: Path, lang: str) -> None:
    """Ctrl-C while `c1client sync` keeps retrying an unreachable hub: exit code 130, a
    message, no traceback."""
    import signal
    import time

    data = tmp_path / "data"
    assert c1client("init", "--data", str(data), "--name", "Meja 1").returncode == 0
    # A terminal's Ctrl-C reaches a program that takes SIGINT. When the tests themselves run
    # in the background (`make test &` without job control), the shell hands them SIGINT
    # ignored, and a child would inherit that: with a handler set here while the child
    # starts, the child starts with SIGINT at its default (exec resets caught signals).
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "client.cli", "sync", "--data", str(data), "--lang", lang,
             "--hub", "http://127.0.0.1:9"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, before)
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()  # the first retry: the command is in its loop
        assert "127.0.0.1:9" in first, first
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _out, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest
    assert ("Dihentikan" if lang == "id" else "Interrupted") in rest


async def test_text_from_a_hub_stays_on_its_line(tmp_path: Path) -> None:
    """A hostile hub's reasons and codes, with line feeds, escape sequences and bidi controls:
    `c1client sync` prints and logs them escaped, one record one line (with -vv, the
    traceback of the failed round keeps its own lines), and its JSON stays one line
    (docs/security.md, finding 8)."""
    import asyncio
    import random

    from hub.protocol.text import refused_at

    from .test_sync import FORGED, Rogue

    data = tmp_path / "data"
    assert c1client("init", "--data", str(data), "--name", "Meja 1").returncode == 0
    form = generator.make_form(random.Random(1), "9901010001001", "PPWP", operator="Uji")
    forms = write_jsonl(tmp_path / "f.jsonl", [form])
    assert c1client("enter", "--data", str(data), str(forms)).returncode == 0

    async def sync(*extra: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "client.cli", "sync", "--data", str(data), "--lang", "en",
            "--hub", rogue.url, "--once", "-vv", *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
            cwd=REPO,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async with Rogue() as rogue:
        code, out, err = await sync()
        code_json, out_json, _ = await sync("--json")
    assert code == 1 and code_json == 1, (out, err)
    assert "refused\\n" + FORGED + "\\x1b[31m" in err, err
    for line in (out + err + out_json).splitlines():
        assert refused_at(line) == -1, line
        assert not line.startswith(FORGED), line
    (doc,) = out_json.splitlines()
    assert json.loads(doc)["error"]["code"] == "bad\\x85entry"
