"""``c1client`` commands, in-process through click's CliRunner, on real stores."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import stat
from pathlib import Path
from typing import Any

import click
import pytest

from client.config import SETTINGS
from client.i18n import MESSAGES
from client.store import DB_FILE, ClientStore
from hub.protocol import entry, receipt, record, rules
from hub.protocol.identity import Identity, fingerprint
from hub.shared import generator, keyfile
from hub.shared.master import load_master

from .conftest import Invoke, body, make_form, write_jsonl

NODE_ID = re.compile(r"\b[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}\b")


def listed(cli: Invoke) -> list[dict[str, Any]]:
    r = cli("list", "--json")
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def status(cli: Invoke) -> dict[str, Any]:
    r = cli("status", "--json")
    assert r.exit_code == 0, r.output
    out: dict[str, Any] = json.loads(r.stdout)
    return out


# -- init ------------------------------------------------------------------------------------


def test_init_prints_node_id_and_key_is_private(cli: Invoke, data_dir: Path) -> None:
    r = cli("init", "--name", "Meja 1")
    assert r.exit_code == 0, r.output
    ids = NODE_ID.findall(r.stdout)
    key = keyfile.load(data_dir / "node.key")
    assert ids == [key.node_id] == [fingerprint(key.public)]
    assert stat.S_IMODE((data_dir / "node.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert "siap" in r.stdout  # Indonesian by default


def test_second_init(cli: Invoke, data_dir: Path) -> None:
    first = cli("init", "--name", "Meja 1", "--json")
    again = cli("init", "--name", "Meja 1", "--json", "--lang", "en")
    assert again.exit_code == 0
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert a["created"] is True and b["created"] is False
    assert a["node_id"] == b["node_id"] and b["data_dir"] == str(data_dir)
    other = cli("init", "--name", "Meja 2", "--lang", "en")
    assert other.exit_code == 1
    assert "already initialised as 'Meja 1'" in other.stderr and a["node_id"] in other.stderr


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 121, "Meja\n7", "Meja 7\n", "\rMeja 1", "Meja\x1b[31m 7", "Meja\x857",
     "Meja\u20287", "Meja \u202e7 ajeM", "Meja \u20667\u2069"],
)  # fmt: skip
def test_init_refuses_a_bad_name_and_creates_nothing(
    cli: Invoke, data_dir: Path, name: str
) -> None:
    r = cli("init", "--name", name, "--json", "--lang", "en")
    assert r.exit_code == 1, r.output
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "bad_entry", err
    assert "laptop name" in err["reason"] and "nama laptop" in err["reason_id"]
    assert "name" in r.stderr
    assert not data_dir.exists(), "a refused init must create nothing"


def test_init_keeps_a_name_without_the_spaces_around_it(cli: Invoke) -> None:
    r = cli("init", "--name", "  Méja 7 — Ruang B  ", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["name"] == "Méja 7 — Ruang B"


def test_commands_before_init_say_what_to_do(cli: Invoke, tmp_path: Path) -> None:
    r = cli("status", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error"]["code"] == "not_initialised"
    assert "c1client init" in r.stderr
    f = write_jsonl(tmp_path / "a.jsonl", [make_form()])
    assert cli("enter", str(f)).exit_code == 1


# -- enter -----------------------------------------------------------------------------------


def test_enter_object_array_jsonl_and_stdin(initialised: Invoke, tmp_path: Path) -> None:
    obj = tmp_path / "one.json"
    obj.write_text(json.dumps(make_form(1), indent=2))
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([make_form(2), make_form(3, form="DPR")]))
    jl = write_jsonl(tmp_path / "many.jsonl", [make_form(4), make_form(5, form="DPD")])
    r = initialised("enter", str(obj), str(arr), str(jl))
    assert r.exit_code == 0, r.output
    assert "5 entri disimpan" in r.stdout
    r = initialised("enter", "-", input=json.dumps(make_form(6)) + "\n")
    assert r.exit_code == 0, r.output
    rows = listed(initialised)
    assert [x["seq"] for x in rows] == [1, 2, 3, 4, 5, 6]
    assert [x["form"] for x in rows] == ["PPWP", "PPWP", "DPR", "PPWP", "DPD", "PPWP"]


def test_enter_mixed_file_saves_valid_ones(initialised: Invoke, tmp_path: Path) -> None:
    bad = make_form(2)
    bad["pengguna_dpt"]["l"] = "seratus"
    f = tmp_path / "mixed.jsonl"
    f.write_text(
        json.dumps(make_form(1))
        + "\n"
        + json.dumps(bad)
        + "\n{not json\n"
        + json.dumps(make_form(3))
        + "\n"
    )
    r = initialised("enter", str(f), "--lang", "en")
    assert r.exit_code == 1
    assert "2 entries saved" in r.stdout and "2 rejected" in r.stdout
    assert f"REJECTED  {f} #2 (line 2) [pengguna_dpt.l]" in r.stdout
    assert "line 3" in r.stdout
    assert [x["seq"] for x in listed(initialised)] == [1, 2]

    # Entering the same file again (after fixing nothing) saves nothing twice.
    r = initialised("enter", str(f), "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["saved"] == []
    again = [x for x in out["rejected"] if x["code"] == "already_saved"]
    assert [x["line"] for x in again] == [1, 4]
    assert "already saved as #1" in again[0]["reason"] and "#2" in again[1]["reason"]
    assert "sudah tersimpan sebagai #1" in again[0]["reason_id"]
    assert [x["seq"] for x in listed(initialised)] == [1, 2]
    assert out["rejected"][0] == {
        "source": str(f),
        "index": 1,
        "line": 2,
        "field": "pengguna_dpt.l",
        "code": "bad_entry",
        "reason": "pengguna_dpt.l must be a whole number 0..999, got 'seratus'",
        "reason_id": "pengguna_dpt.l harus bilangan bulat 0..999, bukan 'seratus'",
    }
    assert out["rejected"][1]["code"] == "bad_json" and out["rejected"][1]["line"] == 3
    assert out["counts"] == {"read": 4, "saved": 0, "flagged": 0, "rejected": 4}


def test_flagged_entry_is_saved_and_flags_reported(initialised: Invoke, tmp_path: Path) -> None:
    f = make_form(1)
    f["sah"] += 1  # R3 and R5: the paper's own arithmetic
    path = write_jsonl(tmp_path / "f.jsonl", [f])
    r = initialised("enter", str(path))
    assert r.exit_code == 0, r.output
    assert "disimpan dengan catatan" in r.stdout
    expected = rules.check(entry.parse(f))
    assert [x.rule for x in expected] == ["R3", "R5"]
    for fl in expected:
        assert fl.id in r.stdout and fl.en in r.stdout  # both languages
    f["note"] = "sesuai formulir"  # typed again, the operator confirming what the paper says
    f["supersedes"] = listed(initialised)[0]["hash"]
    path = write_jsonl(tmp_path / "f2.jsonl", [f])
    r = initialised("enter", str(path), "--json")
    saved = json.loads(r.stdout)["saved"][0]
    assert [x["rule"] for x in saved["flags"]] == ["R3", "R5"]
    assert saved["flags"][0] == expected[0].to_dict()
    assert [x["flags"] for x in listed(initialised)] == [["R3", "R5"], ["R3", "R5"]]
    assert status(initialised)["flagged"] == 2


def test_dki_kabko_rejected_without_master(initialised: Invoke, tmp_path: Path) -> None:
    kabko = make_form(1, tps="3171011001001", form="DPRD_KABKO")
    ok = make_form(2, tps="3171011001001", form="DPRD_PROV")
    path = write_jsonl(tmp_path / "dki.jsonl", [kabko, ok])
    r = initialised("enter", str(path), "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert [s["form"] for s in out["saved"]] == ["DPRD_PROV"]
    (rej,) = out["rejected"]
    assert (rej["code"], rej["field"], rej["index"]) == ("form_not_contested", "form", 0)
    r = initialised("enter", str(path))
    assert "DITOLAK" in r.stdout and "DPRD_KABKO tidak ada di provinsi 31" in r.stdout


def test_unknown_tps_rejected_with_real_master(
    initialised: Invoke, tmp_path: Path, wilayah: Path
) -> None:
    master = load_master(wilayah)
    real = next(master.tps_codes("3171"))
    assert master.tps_exists(real) and not master.tps_exists(real[:10] + "999")
    path = write_jsonl(
        tmp_path / "w.jsonl",
        [
            make_form(1, tps=real),
            make_form(2, tps=real[:10] + "999"),
            make_form(3, tps="9901010001001"),
        ],
    )
    r = initialised("enter", str(path), "--wilayah", str(wilayah), "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert [s["tps"] for s in out["saved"]] == [real]
    assert [(x["code"], x["field"], x["index"]) for x in out["rejected"]] == [
        ("unknown_tps", "tps", 1),
        ("unknown_tps", "tps", 2),
    ]
    assert status(initialised)["entries"] == 1


def test_progress_is_reported_on_stderr(initialised: Invoke, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [make_form(i) for i in range(7)])
    r = initialised("enter", str(path), "--batch-size", "3", "--progress-after", "0")
    assert r.exit_code == 0
    lines = [x for x in r.stderr.splitlines() if x.startswith("dibaca")]
    assert lines[-1] == "dibaca 7, disimpan 7, ditolak 0"
    assert "dibaca 3, disimpan 3, ditolak 0" in lines
    quiet = initialised("enter", str(path))
    assert "dibaca" not in quiet.stderr  # small input, not a terminal


def test_unusable_master_is_a_clear_error(initialised: Invoke, tmp_path: Path) -> None:
    bad = tmp_path / "w.json"
    bad.write_text("{nope")
    path = write_jsonl(tmp_path / "a.jsonl", [make_form()])
    r = initialised("enter", str(path), "--wilayah", str(bad), "--lang", "en")
    assert r.exit_code == 1 and "not a usable polling-station master" in r.stderr
    assert status(initialised)["entries"] == 0


# -- the chain, corrections ------------------------------------------------------------------


def test_chain_over_several_enter_calls(
    initialised: Invoke, tmp_path: Path, data_dir: Path
) -> None:
    for n in range(3):
        path = write_jsonl(tmp_path / f"{n}.jsonl", [make_form(n * 10 + i) for i in range(n + 1)])
        assert initialised("enter", str(path)).exit_code == 0
    rows = listed(initialised)
    assert [x["seq"] for x in rows] == list(range(1, 7))
    prev = record.GENESIS
    with contextlib.closing(sqlite3.connect(data_dir / DB_FILE)) as c:
        raws = [bytes(r[0]) for r in c.execute("SELECT raw FROM entries ORDER BY seq")]
    for row, raw in zip(rows, raws, strict=True):
        rec = record.decode(raw)
        rec.verify()
        assert rec.prev == prev and rec.hash.hex() == row["hash"]
        prev = rec.hash
    assert initialised("verify").exit_code == 0


def test_correction_adds_a_new_entry(initialised: Invoke, tmp_path: Path) -> None:
    wrong = make_form(1)
    wrong["sah"] += 100  # 72 typed as 172
    assert initialised("enter", str(write_jsonl(tmp_path / "a.jsonl", [wrong]))).exit_code == 0
    (first,) = listed(initialised)
    before = json.loads(initialised("show", "1", "--json").stdout)
    fixed = make_form(1, supersedes=first["hash"], note="koreksi salah ketik")
    assert initialised("enter", str(write_jsonl(tmp_path / "b.jsonl", [fixed]))).exit_code == 0
    rows = listed(initialised)
    assert [x["seq"] for x in rows] == [1, 2]
    assert rows[0] == first  # the original is untouched
    assert json.loads(initialised("show", "1", "--json").stdout) == before
    second = json.loads(initialised("show", "2", "--json").stdout)
    assert second["entry"]["supersedes"] == first["hash"]
    assert second["flags"] == [] and before["entry"]["supersedes"] is None
    assert initialised("verify").exit_code == 0


# -- list, show, status ----------------------------------------------------------------------


def test_json_output_stays_on_one_line(initialised: Invoke, tmp_path: Path) -> None:
    """Entry fields may hold U+0085, U+2028 or a bidi control (their own rules): ``--json``
    writes them as \\u escapes, so no reader splits the line, and they read back unchanged."""
    note = "baris\u2028dua\x85tiga \u202ekiri\u202c \x9b"
    form = make_form(1, note=note)
    assert initialised("enter", str(write_jsonl(tmp_path / "a.jsonl", [form]))).exit_code == 0
    out = initialised("show", "1", "--json").stdout
    assert out.splitlines() == [out.rstrip("\n")]
    assert "\\u2028" in out and "\\u0085" in out and "\\u202e" in out
    assert json.loads(out)["entry"]["note"] == note


def test_list_show_status_shapes(initialised: Invoke, tmp_path: Path, data_dir: Path) -> None:
    f = make_form(3, tps="9901010002003", form="DPD")
    f["total"] += 1  # R5, R6
    path = write_jsonl(tmp_path / "a.jsonl", [make_form(1), f])
    assert initialised("enter", str(path)).exit_code == 0

    rows = listed(initialised)
    assert set(rows[1]) == {
        "seq",
        "hash",
        "election",
        "tps",
        "form",
        "flags",
        "state",
        "entered_at",
    }
    assert rows[1]["tps"] == "9901010002003" and rows[1]["form"] == "DPD"
    assert rows[1]["flags"] == ["R5", "R6"] and rows[1]["state"] == "local"
    assert re.fullmatch(r"[0-9a-f]{64}", rows[1]["hash"])

    shown = json.loads(initialised("show", "2", "--json").stdout)
    assert set(shown) == {"seq", "hash", "prev", "origin", "state", "flags", "entry"}
    assert (
        shown["seq"] == 2 and shown["hash"] == rows[1]["hash"] and shown["prev"] == rows[0]["hash"]
    )
    assert shown["origin"] == status(initialised)["node_id"]
    assert [x["rule"] for x in shown["flags"]] == ["R5", "R6"]
    assert {"en", "id", "field", "level"} <= set(shown["flags"][0])
    e = shown["entry"]
    assert e["total"] == f["total"] and e["suara"] == f["suara"]
    assert e["entered_at"] == rows[1]["entered_at"] and e["supersedes"] is None

    human = initialised("show", "2", "--lang", "en")
    assert "Entry #2  (local only)" in human.stdout and "R5" in human.stdout
    missing = initialised("show", "9")
    assert missing.exit_code == 1 and "Tidak ada entri nomor 9" in missing.stderr

    s = status(initialised)
    assert s == {
        "node_id": s["node_id"],
        "name": "Meja 1",
        "data_dir": str(data_dir),
        "entries": 2,
        "last_seq": 2,
        "flagged": 1,
        "hub": {"id": None, "url": None, "last_ok_at": None, "state": None, "code": None},
        "at_hub": 0,
        "confirmed_upstream": 0,
        "local_only": 2,
        "oldest_local_entered_at": rows[0]["entered_at"],
        "scans": {"local": 0, "at_hub": 0, "confirmed_upstream": 0, "bytes_pending": 0},
    }
    assert NODE_ID.fullmatch(s["node_id"])
    human = initialised("status")
    assert "Meja 1" in human.stdout and "Lokal saja:     2" in human.stdout


def test_status_and_list_follow_receipts(initialised: Invoke, data_dir: Path) -> None:
    hub, up = Identity.generate(), Identity.generate()

    async def setup() -> None:
        async with await ClientStore.open(data_dir) as store:
            recs = await store.append([body(make_form(i)) for i in range(4)])
            me = store.identity.public
            await store.pin_hub(hub.public, hub.node_id, "http://127.0.0.1:8470", 5)
            await store.add_receipt("hub", receipt.issue(hub, me, 3, recs[2].hash, 6))
            await store.add_receipt("upstream", receipt.issue(up, me, 2, recs[1].hash, 7))

    asyncio.run(setup())
    s = status(initialised)
    assert s["hub"] == {"id": hub.node_id, "url": "http://127.0.0.1:8470", "last_ok_at": None,
                        "state": None, "code": None}  # fmt: skip
    assert (s["confirmed_upstream"], s["at_hub"], s["local_only"]) == (2, 3, 1)
    assert [x["state"] for x in listed(initialised)] == [
        "confirmed",
        "confirmed",
        "at_hub",
        "local",
    ]
    human = initialised("list", "--lang", "en").stdout
    assert "confirmed upstream" in human and "at hub" in human and "local only" in human


def test_list_and_verify_on_empty_store(initialised: Invoke) -> None:
    assert initialised("list").stdout.strip() == "Belum ada entri."
    assert initialised("list", "--json").stdout == ""
    r = initialised("verify", "--json")
    assert json.loads(r.stdout) == {"ok": True, "entries": 0, "last_seq": 0, "problems": []}


# -- verify ----------------------------------------------------------------------------------


def _tamper(data_dir: Path, sql: str, *params: object) -> None:
    with contextlib.closing(sqlite3.connect(data_dir / DB_FILE, isolation_level=None)) as c:
        c.execute("DROP TRIGGER IF EXISTS entries_no_update")
        c.execute("DROP TRIGGER IF EXISTS entries_no_delete")
        c.execute(sql, params)


@pytest.fixture
def five(initialised: Invoke, tmp_path: Path, data_dir: Path) -> Invoke:
    path = write_jsonl(tmp_path / "five.jsonl", [make_form(i) for i in range(5)])
    assert initialised("enter", str(path)).exit_code == 0
    r = initialised("verify", "--lang", "en")
    assert r.exit_code == 0 and r.stdout.strip() == "All 5 entries verified."
    return initialised


def _raw(data_dir: Path, seq: int) -> bytes:
    with contextlib.closing(sqlite3.connect(data_dir / DB_FILE)) as c:
        return bytes(c.execute("SELECT raw FROM entries WHERE seq = ?", (seq,)).fetchone()[0])


def test_verify_flipped_byte(five: Invoke, data_dir: Path) -> None:
    raw = bytearray(_raw(data_dir, 3))
    raw[len(raw) // 2] ^= 0x10
    _tamper(data_dir, "UPDATE entries SET raw = ? WHERE seq = 3", bytes(raw))
    r = five("verify")
    assert r.exit_code == 1 and "entri #3:" in r.stdout
    out = json.loads(five("verify", "--json").stdout)
    assert out["ok"] is False and out["entries"] == 5
    assert 3 in {p["seq"] for p in out["problems"]}


def test_verify_changed_tps_column(five: Invoke, data_dir: Path) -> None:
    _tamper(data_dir, "UPDATE entries SET tps = '9901010009009' WHERE seq = 4")
    r = five("verify", "--lang", "en")
    assert r.exit_code == 1
    assert "entry #4: the stored tps '9901010009009' does not match" in r.stdout


def test_verify_deleted_row(five: Invoke, data_dir: Path) -> None:
    _tamper(data_dir, "DELETE FROM entries WHERE seq = 2")
    r = five("verify", "--json")
    assert r.exit_code == 1
    assert [(p["seq"], p["code"]) for p in json.loads(r.stdout)["problems"]] == [(2, "seq_gap")]


def test_verify_swapped_rows(five: Invoke, data_dir: Path) -> None:
    a, b = _raw(data_dir, 1), _raw(data_dir, 5)
    _tamper(
        data_dir,
        "UPDATE entries SET raw = CASE seq WHEN 1 THEN ? ELSE ? END WHERE seq IN (1, 5)",
        b,
        a,
    )
    r = five("verify", "--json")
    assert r.exit_code == 1
    seqs = {p["seq"] for p in json.loads(r.stdout)["problems"]}
    assert {1, 5} <= seqs


def test_damaged_store_fails_cleanly(five: Invoke, data_dir: Path, tmp_path: Path) -> None:
    _tamper(data_dir, "UPDATE entries SET raw = x'00' WHERE seq = 2")
    r = five("show", "2", "--lang", "en")
    assert r.exit_code == 1 and "run `c1client verify`" in r.stderr
    assert json.loads(five("show", "2", "--json").stdout)["error"]["code"] == "store_damaged"
    _tamper(data_dir, "DELETE FROM entries WHERE seq = 5")
    path = write_jsonl(tmp_path / "more.jsonl", [make_form(9), make_form(10)])
    r = five("enter", str(path), "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)  # still one valid JSON document
    assert out["saved"] == [] and out["error"]["code"] == "store_damaged"
    assert "NOT saved" in out["error"]["reason"]
    r = five("enter", str(path))
    assert r.exit_code == 1 and "TIDAK disimpan" in r.stderr
    assert status(five)["entries"] == 4  # nothing was added


# -- generate, settings, messages ------------------------------------------------------------


def test_generate_matches_room_workload(cli: Invoke) -> None:
    r = cli("generate", "--count", "30", "--seed", "7", "--forms", "PPWP,DPR", data=False)
    assert r.exit_code == 0, r.output
    got = [json.loads(x) for x in r.stdout.splitlines()]
    want = generator.room_workload(30, 1, seed=7, forms=("PPWP", "DPR"))[0]
    assert got == want
    again = cli("generate", "--count", "30", "--seed", "7", "--forms", "PPWP,DPR", data=False)
    assert again.stdout == r.stdout
    bad = cli("generate", "--count", "3", "--forms", "PPWP,XYZ", data=False)
    assert bad.exit_code == 2 and "XYZ" in bad.output


def test_generate_with_real_master(wilayah: Path) -> None:
    master = load_master(wilayah)
    forms = list(
        generator.laptop_forms(
            40,
            seed=1,
            master=master,
            region="31",
            forms=(*generator.forms_for("31"), "DPRD_KABKO"),
            mistake_rate=0.0,
            operator="x",
        )
    )
    assert len(forms) == 40
    assert all(f["tps"].startswith("31") and master.tps_exists(f["tps"]) for f in forms)
    assert "DPRD_KABKO" not in {f["form"] for f in forms}


def test_every_message_has_both_languages_with_same_placeholders() -> None:
    fields = re.compile(r"{(\w+)")
    for key, (idn, en) in MESSAGES.items():
        assert idn and en, key
        assert sorted(fields.findall(idn)) == sorted(fields.findall(en)), key


def test_every_setting_is_declared_with_help_and_env() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    for s in SETTINGS:
        assert s.help.strip() and s.env.startswith("C1")


def test_every_setting_is_documented() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    if not doc.exists():
        pytest.skip("docs/configuration.md is not written yet")
    text = doc.read_text()
    missing = [s.name for s in SETTINGS if s.env not in text]
    assert not missing, f"settings not documented in docs/configuration.md: {missing}"


def test_help_on_every_command(cli: Invoke) -> None:
    from client.cli import main

    for name, cmd in main.commands.items():
        r = cli(name, "--help", data=False)
        assert r.exit_code == 0, name
        assert cmd.help and len(cmd.help) > 20
        for p in cmd.params:
            if not getattr(p, "hidden", False) and p.param_type_name == "option":
                assert getattr(p, "help", None), f"{name} {p.name} has no help"


def test_language_from_environment_and_verbose_logging(initialised: Invoke, data_dir: Path) -> None:
    from click.testing import CliRunner

    from client.cli import main

    runner = CliRunner(env={"C1_LANG": "en"})
    r = runner.invoke(main, ["status", "--data", str(data_dir)])
    assert r.exit_code == 0 and "Local only:" in r.stdout
    r = runner.invoke(main, ["status", "--data", str(data_dir), "--lang", "id"])
    assert "Lokal saja:" in r.stdout
    r = runner.invoke(main, ["enter", "-", "--data", str(data_dir), "-v"], input="{}")
    assert r.exit_code == 1 and "INFO client.intake: enter: read 1, saved 0, rejected 1" in r.stderr
    r = runner.invoke(main, ["enter", "-", "--data", str(data_dir)], input="{}")
    assert "INFO" not in r.stderr


def test_settings_without_an_option_come_from_the_environment(
    initialised: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from client.cli import make_config

    monkeypatch.setenv("C1CLIENT_BUSY_TIMEOUT", "7.5")
    assert make_config(data_dir="/tmp/x").busy_timeout == 7.5
    monkeypatch.setenv("C1CLIENT_BUSY_TIMEOUT", "soon")
    with pytest.raises(click.UsageError, match="bad setting value"):
        make_config(data_dir="/tmp/x")


def test_hello_timeout_setting(initialised: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    from client.cli import make_config
    from client.config import ClientConfig
    from client.errors import ConfigError

    assert ClientConfig.build(data_dir="/tmp/x").hello_timeout == 3.0
    monkeypatch.setenv("C1CLIENT_HELLO_TIMEOUT", "0.5")
    assert make_config(data_dir="/tmp/x").hello_timeout == 0.5
    for bad in (0.4, 61, float("nan")):
        with pytest.raises(ConfigError, match="hello timeout"):
            ClientConfig.build(data_dir="/tmp/x", hello_timeout=bad)
    monkeypatch.setenv("C1CLIENT_HELLO_TIMEOUT", "0.1")
    r = initialised("sync", "--once", "--hub", "http://127.0.0.1:9", "--lang", "en")
    assert r.exit_code == 2 and "hello timeout 0.1 s is outside 0.5..60" in r.stderr, r.output
