"""The entry schema: every schema error names its field and says what is wrong."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.protocol import codec, entry, rules
from hub.protocol.errors import CodecError, SchemaError
from hub.shared import generator

TPS = "3171011001001"
TPS_KABKO = "3201011001001"
AT = 1707890400


def form(kind: str = "PPWP", seed: int = 7, tps: str = TPS) -> dict[str, Any]:
    return generator.make_form(random.Random(seed), tps, kind, operator="Siti")


def schema_error(obj: Any, **kw: Any) -> SchemaError:
    with pytest.raises(SchemaError) as info:
        entry.parse(obj, **kw)
    assert info.value.code == "bad_entry"
    return info.value


# --- what is accepted -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", entry.FORMS)
def test_generator_form_is_already_normalised(kind: str) -> None:
    f = form(kind, tps=TPS_KABKO)
    assert entry.parse(f) == f


def test_optional_fields_are_defaulted() -> None:
    f = form()
    for k in ("scans", "note", "surat_suara", "disabilitas"):
        del f[k]
    out = entry.parse(f)
    assert out["scans"] == []
    assert out["note"] == ""
    assert "supersedes" not in out
    assert "surat_suara" not in out
    assert "disabilitas" not in out


def test_supersedes_null_is_omitted_and_a_hash_is_kept() -> None:
    f = form()
    f["supersedes"] = None
    assert "supersedes" not in entry.parse(f)
    f["supersedes"] = "ab" * 32
    assert entry.parse(f)["supersedes"] == "ab" * 32


def test_parse_does_not_modify_its_input() -> None:
    f = form()
    del f["note"]
    before = repr(f)
    entry.parse(f)
    assert repr(f) == before


def test_entered_at_is_only_allowed_in_a_body() -> None:
    f = form()
    f["entered_at"] = AT
    assert schema_error(f).field == "entered_at"
    assert entry.parse(f, body=True)["entered_at"] == AT


@pytest.mark.parametrize("bad", [-1, 2**40, "1707890400", True, None])
def test_body_entered_at_must_be_unix_seconds(bad: Any) -> None:
    f = form()
    f["entered_at"] = bad
    err = schema_error(f, body=True)
    assert err.field == "entered_at"
    assert "unix seconds" in err.message


def test_body_needs_entered_at() -> None:
    err = schema_error(form(), body=True)
    assert err.field == "entered_at"


# --- schema errors --------------------------------------------------------------------------


def test_not_an_object() -> None:
    err = schema_error([1, 2])
    assert err.field is None
    assert "must be a JSON object" in err.message
    assert "list" in err.message


@pytest.mark.parametrize("name", ["election", "form", "tps", "pemilih_dpt", "sah", "operator"])
def test_missing_required_field(name: str) -> None:
    f = form()
    del f[name]
    err = schema_error(f)
    assert err.field == name
    assert err.message == f"required field {name!r} is missing"


def test_unknown_top_level_field_is_named() -> None:
    f = form()
    f["suara_sah"] = 3
    err = schema_error(f)
    assert err.field == "suara_sah"
    assert err.message == "unknown field 'suara_sah'"


def test_unknown_key_inside_a_row_is_named() -> None:
    f = form()
    f["pengguna_dpt"]["x"] = 1
    err = schema_error(f)
    assert err.field == "pengguna_dpt.x"
    assert "pengguna_dpt.x is not a known field" in err.message
    assert "l, p, j" in err.message


def test_missing_key_inside_a_row() -> None:
    f = form()
    del f["pengguna_total"]["j"]
    err = schema_error(f)
    assert err.field == "pengguna_total.j"
    assert err.message == "pengguna_total.j is missing"


def test_missing_ballot_key() -> None:
    f = form()
    del f["surat_suara"]["sisa"]
    err = schema_error(f)
    assert err.field == "surat_suara.sisa"


@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        (("pemilih_dpt", "l"), "140", "'140'"),
        (("pemilih_dpt", "l"), 140.0, "140.0"),
        (("pemilih_dpt", "l"), None, "None"),
        (("sah",), [1], "[1]"),
        (("suara", "1"), "96", "'96'"),
        (("surat_suara", "rusak"), 1.5, "1.5"),
    ],
)
def test_cell_of_wrong_type(path: tuple[str, ...], value: Any, shown: str) -> None:
    f = form()
    _set(f, path, value)
    err = schema_error(f)
    assert err.field == ".".join(path)
    assert err.message == f"{'.'.join(path)} must be a whole number 0..999, got {shown}"


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_number(value: bool) -> None:
    f = form()
    f["tidak_sah"] = value
    err = schema_error(f)
    assert err.field == "tidak_sah"
    assert f"got {value}" in err.message


@pytest.mark.parametrize("value", [-1, 1000])
@pytest.mark.parametrize(
    "path",
    [("pengguna_dpk", "p"), ("total",), ("suara", "2"), ("surat_suara", "diterima")],
)
def test_cell_out_of_range(path: tuple[str, ...], value: int) -> None:
    f = form()
    _set(f, path, value)
    err = schema_error(f)
    assert err.field == ".".join(path)
    assert err.message == f"{'.'.join(path)} is {value}, outside 0..999 (three digit boxes)"


def test_cell_range_edges_are_accepted() -> None:
    f = form()
    f["tidak_sah"] = 0
    f["total"] = 999
    out = entry.parse(f)
    assert (out["tidak_sah"], out["total"]) == (0, 999)


def test_party_cells_name_their_field() -> None:
    f = form("DPR")
    f["partai"]["3"]["caleg"]["2"] = 1000
    assert schema_error(f).field == "partai.3.caleg.2"
    f = form("DPR")
    f["partai"]["24"]["jumlah"] = -1
    assert schema_error(f).field == "partai.24.jumlah"
    f = form("DPR")
    f["partai"]["1"]["partai"] = "5"
    assert schema_error(f).field == "partai.1.partai"


def test_row_must_be_an_object() -> None:
    f = form()
    f["pemilih_dpt"] = [140, 152, 292]
    err = schema_error(f)
    assert err.field == "pemilih_dpt"
    assert err.message == "pemilih_dpt must be an object, got list"


@pytest.mark.parametrize("value", ["PILPRES", "ppwp", "", None, 1])
def test_unknown_form_type(value: Any) -> None:
    f = form()
    f["form"] = value
    err = schema_error(f)
    assert err.field == "form"
    assert err.message == (
        f"form {value!r} is not a known form type (one of PPWP, DPR, DPD, DPRD_PROV, DPRD_KABKO)"
    )


@pytest.mark.parametrize(
    "value", ["317101100100", "31710110010011", "317101100100a", " 3171011001001", 3171011001001]
)
def test_tps_must_be_13_digits(value: Any) -> None:
    f = form()
    f["tps"] = value
    err = schema_error(f)
    assert err.field == "tps"
    assert err.message == (
        f"tps must be 13 digits (10-digit desa code + 3-digit TPS number), got {value!r}"
    )


@pytest.mark.parametrize("value", ["Pemilu-2024", "", "-x", "pemilu 2024", 2024])
def test_bad_election_id(value: Any) -> None:
    f = form()
    f["election"] = value
    err = schema_error(f)
    assert err.field == "election"
    assert "pemilu-2024" in err.message


@pytest.mark.parametrize("kind", entry.CANDIDATE_FORMS)
def test_candidate_form_with_partai(kind: str) -> None:
    f = form(kind)
    f["partai"] = form("DPR")["partai"]
    err = schema_error(f)
    assert err.field == "partai"
    assert err.message == f"{kind} has votes per candidate ('suara'), not 'partai'"


@pytest.mark.parametrize("kind", entry.CANDIDATE_FORMS)
def test_candidate_form_without_suara(kind: str) -> None:
    f = form(kind)
    del f["suara"]
    err = schema_error(f)
    assert err.field == "suara"
    assert err.message == f"{kind} needs 'suara' (votes per candidate number)"


@pytest.mark.parametrize("kind", entry.PARTY_FORMS)
def test_party_form_with_suara(kind: str) -> None:
    f = form(kind, tps=TPS_KABKO)
    f["suara"] = {"1": 1}
    err = schema_error(f)
    assert err.field == "suara"
    assert err.message == f"{kind} has votes per party ('partai'), not 'suara'"


@pytest.mark.parametrize("kind", entry.PARTY_FORMS)
def test_party_form_without_partai(kind: str) -> None:
    f = form(kind, tps=TPS_KABKO)
    del f["partai"]
    err = schema_error(f)
    assert err.field == "partai"
    assert err.message == f"{kind} needs 'partai' (votes per party number)"


@pytest.mark.parametrize("key", ["01", "x", "0", "1000", "", " 1"])
def test_bad_candidate_key(key: str) -> None:
    f = form()
    f["suara"][key] = 1
    err = schema_error(f)
    assert err.field == f"suara.{key}"
    assert err.message == (f"suara key {key!r} is not a candidate number 1..999 (no leading zeros)")


@pytest.mark.parametrize("key", ["01", "x"])
def test_bad_party_key(key: str) -> None:
    f = form("DPR")
    f["partai"][key] = f["partai"].pop("1")
    err = schema_error(f)
    assert err.field == f"partai.{key}"
    assert err.message == f"partai key {key!r} is not a party number 1..999 (no leading zeros)"


@pytest.mark.parametrize("key", ["01", "x"])
def test_bad_caleg_key(key: str) -> None:
    f = form("DPR")
    f["partai"]["2"]["caleg"][key] = 0
    err = schema_error(f)
    assert err.field == f"partai.2.caleg.{key}"
    assert err.message == (
        f"partai.2.caleg key {key!r} is not a candidate number 1..999 (no leading zeros)"
    )


def test_unknown_key_in_a_party() -> None:
    f = form("DPR")
    f["partai"]["2"]["suara"] = 3
    err = schema_error(f)
    assert err.field == "partai.2.suara"
    assert "expected partai, caleg, jumlah" in err.message


def test_empty_votes() -> None:
    f = form()
    f["suara"] = {}
    err = schema_error(f)
    assert err.field == "suara"
    assert err.message == "suara has no candidates"
    f = form("DPR")
    f["partai"] = {}
    assert schema_error(f).message == "partai has no parties"


def test_too_many_candidates_and_parties() -> None:
    f = form()
    f["suara"] = {str(i): 0 for i in range(1, entry.MAX_CANDIDATES + 2)}
    err = schema_error(f)
    assert err.field == "suara"
    assert err.message == f"suara has {entry.MAX_CANDIDATES + 1} candidates, over 200"
    f = form("DPR")
    party = f["partai"]["1"]
    f["partai"] = {str(i): party for i in range(1, entry.MAX_PARTIES + 2)}
    assert schema_error(f).message == f"partai has {entry.MAX_PARTIES + 1} parties, over 60"
    f = form("DPR")
    f["partai"]["1"]["caleg"] = {str(i): 0 for i in range(1, entry.MAX_CALEG + 2)}
    err = schema_error(f)
    assert err.field == "partai.1.caleg"
    assert err.message == f"partai.1.caleg has {entry.MAX_CALEG + 1} candidates, over 120"


@pytest.mark.parametrize(
    "value", ["AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, 12, None, b"\xab" * 32]
)
def test_bad_supersedes_hash(value: Any) -> None:
    f = form()
    f["supersedes"] = value
    if value is None:  # null means "supersedes nothing"
        assert "supersedes" not in entry.parse(f)
        return
    err = schema_error(f)
    assert err.field == "supersedes"
    assert err.message == "supersedes must be a SHA-256 hash as 64 lowercase hex characters"


def test_bad_scan_hash_names_its_index() -> None:
    f = form()
    f["scans"] = ["ab" * 32, "not a hash"]
    err = schema_error(f)
    assert err.field == "scans[1]"
    assert "SHA-256" in err.message


def test_scans_must_be_a_list() -> None:
    f = form()
    f["scans"] = "ab" * 32
    err = schema_error(f)
    assert err.field == "scans"
    assert err.message == "scans must be a list of SHA-256 hashes"


def test_too_many_scans() -> None:
    f = form()
    f["scans"] = ["ab" * 32] * entry.MAX_SCANS
    assert len(entry.parse(f)["scans"]) == entry.MAX_SCANS
    f["scans"] = ["ab" * 32] * (entry.MAX_SCANS + 1)
    err = schema_error(f)
    assert err.field == "scans"
    assert err.message == "scans has 65 pages, over 64"


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_operator_empty(value: str) -> None:
    f = form()
    f["operator"] = value
    err = schema_error(f)
    assert err.field == "operator"
    assert err.message == "operator must not be empty"


def test_operator_wrong_type_too_long_or_control_characters() -> None:
    f = form()
    f["operator"] = 12
    assert schema_error(f).message == "operator must be text, got int"
    f["operator"] = "x" * 121
    assert schema_error(f).message == "operator is 121 characters, over 120"
    f["operator"] = "Siti\x00"
    assert schema_error(f).message == "operator contains control characters"


def test_note_may_be_empty_but_is_bounded() -> None:
    f = form()
    f["note"] = "baris 2\tdikoreksi\nsesuai kertas"
    assert entry.parse(f)["note"] == f["note"]
    f["note"] = "x" * (entry.MAX_NOTE + 1)
    err = schema_error(f)
    assert err.field == "note"
    assert err.message == "note is 2001 characters, over 2000"


# --- bodies ---------------------------------------------------------------------------------


def test_body_round_trip_adds_entered_at() -> None:
    parsed = entry.parse(form("DPR"))
    data = entry.encode_body(parsed, AT)
    assert "entered_at" not in parsed
    assert entry.decode_body(data) == {**parsed, "entered_at": AT}


@pytest.mark.parametrize("missing", ["note", "scans"])
def test_decode_body_rejects_a_body_missing_a_defaulted_field(missing: str) -> None:
    body = {**entry.parse(form()), "entered_at": AT}
    del body[missing]
    assert entry.parse(body, body=True)[missing] is not None  # parse alone would default it
    with pytest.raises(CodecError, match="entry body is not in normalised form"):
        entry.decode_body(codec.pack(body))


def test_decode_body_rejects_an_explicit_null_supersedes() -> None:
    body = {**entry.parse(form()), "entered_at": AT, "supersedes": None}
    data = msgpack.packb({k: body[k] for k in sorted(body)}, use_bin_type=True)
    with pytest.raises(CodecError, match="entry body is not in normalised form"):
        entry.decode_body(data)


def test_decode_body_rejects_a_non_canonical_encoding() -> None:
    body = {**entry.parse(form()), "entered_at": AT}
    unsorted = msgpack.packb(dict(reversed(list(body.items()))), use_bin_type=True)
    assert codec.unpack(unsorted, canonical=False) == body
    with pytest.raises(CodecError):
        entry.decode_body(unsorted)


def test_decode_body_schema_error_names_field() -> None:
    body = {**entry.parse(form()), "entered_at": AT}
    body["sah"] = 1000
    with pytest.raises(SchemaError) as info:
        entry.decode_body(codec.pack(body))
    assert info.value.field == "sah"
    assert info.value.message.startswith("entry body: sah is 1000")


def test_decode_body_rejects_body_without_entered_at() -> None:
    with pytest.raises(SchemaError) as info:
        entry.decode_body(codec.pack(entry.parse(form())))
    assert info.value.field == "entered_at"


def test_decode_body_rejects_garbage_and_oversize() -> None:
    with pytest.raises(CodecError):
        entry.decode_body(b"\xc1")
    with pytest.raises(CodecError, match="over the limit"):
        entry.decode_body(b"\x00" * (entry.MAX_BODY + 1))


def test_encode_body_rejects_oversize_body() -> None:
    # Every field within its own bounds, every list at its limit with the longest keys and
    # four-byte UTF-8 text: together just past the 64 KiB body limit.
    f = form("DPR")
    caleg = {str(i): 999 for i in range(1000 - entry.MAX_CALEG, 1000)}
    party = {"partai": 999, "caleg": caleg, "jumlah": 999}
    f["partai"] = {str(i): party for i in range(1000 - entry.MAX_PARTIES, 1000)}
    f["scans"] = ["ab" * 32] * entry.MAX_SCANS
    f["note"] = "\U0001d54f" * entry.MAX_NOTE
    f["operator"] = "\U0001d54f" * entry.MAX_OPERATOR
    f["supersedes"] = "ab" * 32
    f["election"] = "x" * 64
    parsed = entry.parse(f)
    with pytest.raises(SchemaError, match=r"entry is \d+ bytes encoded, over 65536"):
        entry.encode_body(parsed, 2**40 - 1)
    f["note"] = ""
    assert entry.decode_body(entry.encode_body(entry.parse(f), AT))["note"] == ""


def test_to_json_makes_supersedes_explicit() -> None:
    body = entry.decode_body(entry.encode_body(entry.parse(form()), AT))
    out = entry.to_json(body)
    assert out["supersedes"] is None
    assert "supersedes" not in body


def test_key_and_numbers() -> None:
    a = entry.parse(form())
    b = dict(a, operator="Budi", note="dicek ulang", scans=["cd" * 32], supersedes="ef" * 32)
    assert entry.key(a) == ("pemilu-2024", "PPWP", TPS)
    assert entry.numbers(a) == entry.numbers(b)  # who typed it and when is not a number
    c = dict(a, sah=a["sah"] + 1)
    assert entry.numbers(c) != entry.numbers(a)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    kind=st.sampled_from(entry.FORMS),
    mistake=st.sampled_from((None, *generator.MISTAKES)),
    entered_at=st.integers(min_value=0, max_value=2**40 - 1),
)
def test_generator_forms_survive_parse_encode_decode(
    seed: int, kind: str, mistake: str | None, entered_at: int
) -> None:
    rng = random.Random(seed)
    f = generator.make_form(rng, TPS_KABKO, kind, operator="Operator 01")
    if mistake is not None:
        generator.add_mistake(rng, f, mistake)
    parsed = entry.parse(f)
    data = entry.encode_body(parsed, entered_at)
    assert entry.decode_body(data) == {**parsed, "entered_at": entered_at}
    assert entry.encode_body(entry.decode_body(data), entered_at) == data


# --- helpers --------------------------------------------------------------------------------


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


# --- docs/entry-format.md stays true --------------------------------------------------------


def _doc_json(repo_root: Path) -> list[Any]:
    text = (repo_root / "docs" / "entry-format.md").read_text(encoding="utf-8")
    return [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_doc_examples_are_valid_and_clean(repo_root: Path) -> None:
    examples = [o for o in _doc_json(repo_root) if "election" in o]
    assert {o["form"] for o in examples} == {"PPWP", "DPR"}
    for o in examples:
        assert rules.check(entry.parse(o)) == [], o["form"]


def test_doc_flag_example_is_what_rules_say(repo_root: Path) -> None:
    (ppwp,) = [o for o in _doc_json(repo_root) if o.get("form") == "PPWP"]
    (flag_example,) = [o for o in _doc_json(repo_root) if "rule" in o]
    ppwp["suara"]["1"] += 100
    (flag,) = rules.check(entry.parse(ppwp))
    assert flag.to_dict() == flag_example


# --- parse output is already in canonical order (codec.pack_ordered) ------------------------


def _key_order_is_canonical(value: Any) -> bool:
    if isinstance(value, dict):
        keys = [k.encode("utf-8") for k in value]
        return keys == sorted(keys) and all(_key_order_is_canonical(v) for v in value.values())
    if isinstance(value, list):
        return all(_key_order_is_canonical(v) for v in value)
    return True


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    kind=st.sampled_from(entry.FORMS),
    shuffle=st.randoms(use_true_random=False),
)
def test_parse_output_packs_the_same_on_the_fast_path(
    seed: int, kind: str, shuffle: random.Random
) -> None:
    f = generator.make_form(random.Random(seed), TPS_KABKO, kind, operator="Operator 01")
    f["supersedes"] = "ab" * 32
    f["scans"] = ["cd" * 32]
    parsed = entry.parse(_shuffled(f, shuffle))  # input key order must not matter
    assert _key_order_is_canonical(parsed)
    assert codec.pack_ordered(parsed) == codec.pack(parsed)
    body = entry.decode_body(entry.encode_body(parsed, AT))
    assert _key_order_is_canonical(body)
    assert codec.pack_ordered(body) == codec.pack(body)
    numbers = {k: v for k, v in parsed.items() if k not in entry._NOT_NUMBERS}
    assert entry.numbers(parsed) == codec.pack(numbers)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value
