"""Reading entry files in every accepted shape, streamed, and checking entries one by one."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from client import intake
from client.intake import Item, check_item, read_items
from hub.protocol.wilayah import Master

from .conftest import make_form


def items(tmp_path: Path, text: str | bytes, name: str = "in.json") -> list[Item]:
    p = tmp_path / name
    if isinstance(text, str):
        p.write_text(text)
    else:
        p.write_bytes(text)
    return list(read_items(str(p)))


def values(got: list[Item]) -> list[Any]:
    assert all(i.error is None for i in got), [i.error for i in got if i.error]
    return [i.value for i in got]


def test_single_pretty_object(tmp_path: Path) -> None:
    f = make_form()
    got = items(tmp_path, json.dumps(f, indent=2))
    assert values(got) == [f]
    assert (got[0].index, got[0].line) == (0, 1)


def test_single_line_object_without_newline(tmp_path: Path) -> None:
    assert values(items(tmp_path, '{"a": 1}')) == [{"a": 1}]


def test_json_lines_with_blank_lines_and_a_bad_line(tmp_path: Path) -> None:
    text = '{"a": 1}\n\n{"a": 2}\n{"a": \n{"a": 4}\n'
    got = items(tmp_path, text, "in.jsonl")
    assert [(i.index, i.line) for i in got] == [(0, 1), (1, 3), (2, 4), (3, 5)]
    assert [i.value for i in got] == [{"a": 1}, {"a": 2}, None, {"a": 4}]
    assert got[2].error is not None and "not valid JSON" in got[2].error
    assert got[2].code == "bad_json"


def test_array_positions(tmp_path: Path) -> None:
    text = '[\n  {"a": 1},\n  {"a": 2},\n\n  {"a":\n 3}\n]\n'
    got = items(tmp_path, text)
    assert values(got) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert [(i.index, i.line) for i in got] == [(0, 2), (1, 3), (2, 5)]


def test_empty_array_and_empty_file(tmp_path: Path) -> None:
    assert [i.code for i in items(tmp_path, "[ ]")] == ["empty_input"]
    assert [i.code for i in items(tmp_path, " \n\n")] == ["empty_input"]


def test_array_syntax_error_keeps_the_values_before_it(tmp_path: Path) -> None:
    text = '[{"a": 1},\n {"a": 2}\n {"a": 3}]'
    got = items(tmp_path, text)
    assert [i.value for i in got[:2]] == [{"a": 1}, {"a": 2}]
    assert got[2].error == "expected ',' or ']' after an entry"
    assert got[2].line == 3 and len(got) == 3

    got = items(tmp_path, '[{"a": 1}, {"a": tru}]')
    assert got[0].value == {"a": 1}
    assert got[1].error is not None and "line 1" in got[1].error


def test_data_after_array_is_reported(tmp_path: Path) -> None:
    got = items(tmp_path, '[{"a": 1}]\n{"b": 2}')
    assert got[0].value == {"a": 1}
    assert got[1].error == "unexpected data after the closing ']'" and got[1].line == 2


def test_concatenated_pretty_objects(tmp_path: Path) -> None:
    a, b = make_form(1), make_form(2)
    got = items(tmp_path, json.dumps(a, indent=1) + "\n" + json.dumps(b, indent=1))
    assert values(got) == [a, b]
    assert got[1].line == json.dumps(a, indent=1).count("\n") + 2


def test_not_utf8_and_bom(tmp_path: Path) -> None:
    got = items(tmp_path, b'{"a": "\xff"}')
    assert got[0].code == "unreadable"
    assert values(items(tmp_path, b'\xef\xbb\xbf{"a": 1}')) == [{"a": 1}]


def test_stream_stays_open(tmp_path: Path) -> None:
    stream = io.BytesIO(b'{"a": 1}\n{"a": 2}\n')
    assert values(list(read_items("-", stream))) == [{"a": 1}, {"a": 2}]
    assert not stream.closed
    (item,) = read_items("-", io.BytesIO(b'{"a": 1}'))
    assert item.source == "stdin"


@pytest.mark.parametrize("chunk", [7, 64, 4096])
def test_values_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(intake, "CHUNK", chunk)
    forms = [make_form(i, form="DPR") for i in range(12)]
    numbers = list(range(995, 1_000_120, 997))
    assert values(items(tmp_path, json.dumps(forms, indent=2))) == forms
    assert values(items(tmp_path, json.dumps(numbers))) == numbers  # numbers split by a chunk
    pretty = "\n".join(json.dumps(f, indent=3) for f in forms)
    assert values(items(tmp_path, pretty)) == forms
    lines = "".join(json.dumps(f) + "\n" for f in forms)
    got = items(tmp_path, lines)
    assert values(got) == forms
    assert [i.line for i in got] == list(range(1, 13))


def test_big_inputs_are_read_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    class Watched(intake._Text):
        def fill(self) -> bool:
            more = super().fill()
            seen.append(len(self.buf))
            return more

    monkeypatch.setattr(intake, "_Text", Watched)
    forms = [make_form(i, form="DPR") for i in range(120)]
    text = json.dumps(forms, indent=1)
    assert len(text) > 5 * intake.CHUNK
    assert values(items(tmp_path, text)) == forms
    assert max(seen) < 3 * intake.CHUNK  # never the whole file at once
    seen.clear()
    pretty = "\n".join(json.dumps(f, indent=3) for f in forms)
    assert values(items(tmp_path, pretty)) == forms
    assert max(seen) < 3 * intake.CHUNK


def test_check_item_flags_are_kept_and_r11_rejects() -> None:
    good = Item("f", 0, 1, value=make_form(sah=1))
    parsed, flags = check_item(good, None)  # type: ignore[misc]
    assert parsed["sah"] == 1 and [f.rule for f in flags] == ["R3", "R5"]

    kabko = Item("f", 1, 2, value=make_form(tps="3171011001001", form="DPRD_KABKO"))
    r = check_item(kabko, None)
    assert isinstance(r, intake.Rejected)
    assert (r.code, r.field, r.index, r.line) == ("form_not_contested", "form", 1, 2)
    assert "DPRD_KABKO" in r.reason and "provinsi 31" in r.alasan

    master = Master.from_json({"tps": {"9901010001": [3]}})
    r = check_item(Item("f", 2, 3, value=make_form(tps="9901010001004")), master)
    assert isinstance(r, intake.Rejected) and r.code == "unknown_tps" and r.field == "tps"
    assert not isinstance(check_item(Item("f", 3, 4, value=make_form()), master), intake.Rejected)


def test_check_item_schema_errors_name_the_field() -> None:
    f = make_form()
    f["pengguna_dpt"]["l"] = 1000
    r = check_item(Item("x.jsonl", 4, 5, value=f), None)
    assert isinstance(r, intake.Rejected)
    assert (r.code, r.field) == ("bad_entry", "pengguna_dpt.l")
    assert "outside 0..999" in r.reason
    r = check_item(Item("x.jsonl", 5, 6, error="not valid JSON: x"), None)
    assert isinstance(r, intake.Rejected) and r.code == "bad_json" and r.field is None
    assert r.alasan.startswith("bukan JSON yang sah")
