"""Canonical msgpack: pinned vectors, round trips, and rejection of everything non-canonical."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.protocol import codec, entry, receipt, record
from hub.protocol.errors import CodecError, LimitError
from hub.protocol.identity import Identity

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
MANIFEST: dict[str, Any] = json.loads((VECTORS / "manifest.json").read_text(encoding="utf-8"))
VECTOR_NAMES = sorted(MANIFEST["vectors"])


def _vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def _of_kind(kind: str) -> list[str]:
    return [n for n in VECTOR_NAMES if MANIFEST["vectors"][n]["kind"] == kind]


def _ident(name: str) -> Identity:
    spec = MANIFEST["identities"][name]
    ident = Identity.from_seed(bytes.fromhex(spec["seed"]))
    assert ident.public.hex() == spec["public"]
    assert ident.node_id == spec["node_id"]
    return ident


# --- pinned vectors -------------------------------------------------------------------------


def test_manifest_lists_every_vector_file() -> None:
    on_disk = {p.name for p in VECTORS.glob("*.bin")}
    assert on_disk == set(VECTOR_NAMES)
    assert {"entry_body", "record", "receipt"} <= {v["kind"] for v in MANIFEST["vectors"].values()}


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_file_matches_manifest_hash(name: str) -> None:
    assert hashlib.sha256(_vector(name)).hexdigest() == MANIFEST["vectors"][name]["sha256"]


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_is_canonical(name: str) -> None:
    data = _vector(name)
    assert codec.pack(codec.unpack(data)) == data


@pytest.mark.parametrize("name", _of_kind("entry_body"))
def test_entry_vector_reencodes_exactly(name: str) -> None:
    spec = MANIFEST["vectors"][name]
    data = entry.encode_body(entry.parse(spec["input"]), spec["entered_at"])
    assert data == _vector(name)


@pytest.mark.parametrize("name", _of_kind("entry_body"))
def test_entry_vector_decodes_to_input(name: str) -> None:
    spec = MANIFEST["vectors"][name]
    body = entry.decode_body(_vector(name))
    assert body == {**spec["input"], "entered_at": spec["entered_at"]}
    assert entry.to_json(body)["supersedes"] == spec["input"].get("supersedes")


@pytest.mark.parametrize("name", _of_kind("record"))
def test_record_vector_reencodes_exactly(name: str) -> None:
    spec = MANIFEST["vectors"][name]
    rec = record.make(
        _ident(spec["signer"]), spec["seq"], bytes.fromhex(spec["prev"]), _vector(spec["body"])
    )
    assert rec.raw == _vector(name)
    assert rec.hash.hex() == spec["sha256"]


@pytest.mark.parametrize("name", _of_kind("record"))
def test_record_vector_decodes_and_verifies(name: str) -> None:
    spec = MANIFEST["vectors"][name]
    rec = record.decode(_vector(name))
    rec.verify()
    assert rec.origin == _ident(spec["signer"]).public
    assert rec.seq == spec["seq"]
    assert rec.prev.hex() == spec["prev"]
    assert rec.body == _vector(spec["body"])


def test_record_vectors_form_a_chain() -> None:
    recs = sorted((record.decode(_vector(n)) for n in _of_kind("record")), key=lambda r: r.seq)
    assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
    assert recs[0].prev == record.GENESIS
    for before, after in itertools.pairwise(recs):
        assert after.prev == before.hash


@pytest.mark.parametrize("name", _of_kind("receipt"))
def test_receipt_vector_reencodes_and_decodes(name: str) -> None:
    spec = MANIFEST["vectors"][name]
    issuer, origin = _ident(spec["issuer"]), _ident(spec["origin"])
    rc = receipt.issue(issuer, origin.public, spec["seq"], bytes.fromhex(spec["hash"]), spec["at"])
    assert rc.raw == _vector(name)
    got = receipt.decode(_vector(name))
    got.check(issuer.public)
    assert (got.issuer, got.origin, got.seq, got.hash, got.at) == (
        issuer.public,
        origin.public,
        spec["seq"],
        bytes.fromhex(spec["hash"]),
        spec["at"],
    )


def test_make_vectors_script_agrees_with_checked_in_files(repo_root: Path) -> None:
    script = repo_root / "tests" / "vectors" / "make_vectors.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- known encodings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hex_"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65536, "ce00010000"),
        (2**32, "cf0000000100000000"),
        (2**64 - 1, "cfffffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-129, "d1ff7f"),
        (-(2**63), "d38000000000000000"),
        ("", "a0"),
        ("a" * 32, "d920" + "61" * 32),
        (b"", "c400"),
        (b"\x01", "c40101"),
        ([], "90"),
        ({}, "80"),
        ({"b": 1, "a": 2}, "82a16102a16201"),
        ({"é": 1, "z": 2}, "82a17a02a2c3a901"),  # sorted by UTF-8 bytes: "z" < "é"
    ],
)
def test_known_encoding(value: Any, hex_: str) -> None:
    assert codec.pack(value).hex() == hex_
    assert codec.unpack(bytes.fromhex(hex_)) == value


def test_nesting_limit_is_sixteen() -> None:
    sixteen = bytes.fromhex("91" * 16 + "01")
    assert codec.pack(codec.unpack(sixteen)) == sixteen
    with pytest.raises(CodecError, match="nested too deeply"):
        codec.unpack(bytes.fromhex("91" * 17 + "01"))


def test_tuple_packs_as_array() -> None:
    assert codec.pack((1, 2)) == codec.pack([1, 2])


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        True,
        False,
        None,
        {1: 2},
        {b"a": 1},
        bytearray(b"x"),
        {"a": {1, 2}},
        2**64,
        -(2**63) - 1,
        [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]],  # deeper than 16
    ],
)
def test_pack_rejects_non_canonical_types(value: Any) -> None:
    with pytest.raises(CodecError):
        codec.pack(value)


# --- rejection of non-canonical bytes -------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_", "why"),
    [
        ("82a16201a16102", "unsorted keys"),
        ("82a16101a16102", "duplicate key"),
        ("cc05", "5 as uint8 instead of fixint"),
        ("cd0005", "5 as uint16"),
        ("cd00ff", "255 as uint16"),
        ("ce0000ffff", "65535 as uint32"),
        ("cf00000000ffffffff", "2**32-1 as uint64"),
        ("d005", "positive number as int8"),
        ("d0ff", "-1 as int8 instead of negative fixint"),
        ("d1ff80", "-128 as int16"),
        ("d901" + "61", "short string as str8"),
        ("da000161", "short string as str16"),
        ("c50001" + "61", "short bytes as bin16"),
        ("dc000101", "one-item array as array16"),
        ("de0001a16101", "one-item map as map16"),
        ("81c40161" + "01", "bin used as a map key"),
        ("8101" + "01", "integer map key"),
        ("cb3ff8000000000000", "float64"),
        ("ca3fc00000", "float32"),
        ("c0", "nil"),
        ("c3", "true"),
        ("c2", "false"),
        ("d40100", "fixext1"),
        ("d6ff00000000", "timestamp extension"),
        ("c1", "reserved byte"),
        ("0102", "trailing bytes"),
        ("9101" + "00", "trailing bytes after an array"),
        ("", "empty"),
        ("92", "truncated array"),
        ("a3" + "6162", "truncated string"),
        ("a1ff", "invalid UTF-8"),
        ("dbffffffff", "4 GiB string declared, nothing follows"),
        ("c6ffffffff00", "4 GiB bytes declared"),
        ("ddffffffff", "4 billion array items declared"),
        ("dfffffffff", "4 billion map items declared"),
        ("91" * 17 + "01", "nested too deeply"),
        ("91" * 100_000 + "01", "nested far too deeply"),
    ],
)
def test_unpack_rejects(hex_: str, why: str) -> None:
    with pytest.raises(CodecError):
        codec.unpack(bytes.fromhex(hex_))


def test_unpack_rejects_oversize_before_decoding() -> None:
    data = codec.pack(b"x" * 100)
    assert codec.unpack(data, max_size=len(data)) == b"x" * 100
    with pytest.raises(CodecError, match="over the limit"):
        codec.unpack(data, max_size=len(data) - 1)


@pytest.mark.parametrize("value", [bytearray(b"\x01"), memoryview(b"\x01"), "01"])
def test_unpack_wants_bytes(value: Any) -> None:
    with pytest.raises(CodecError):
        codec.unpack(value)


def test_non_canonical_accepted_only_when_asked() -> None:
    assert codec.unpack(bytes.fromhex("cc05"), canonical=False) == 5
    with pytest.raises(CodecError):
        codec.unpack(bytes.fromhex("cc05"))


# --- properties -----------------------------------------------------------------------------

_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from([0, -1, -32, -33, 127, 128, 255, 256, 2**16, 2**32, 2**63, 2**64 - 1]),
    st.sampled_from([-(2**7), -(2**7) - 1, -(2**15) - 1, -(2**31) - 1, -(2**63)]),
    st.text(max_size=40),
    st.binary(max_size=40),
)


def _nested(depth: int) -> st.SearchStrategy[Any]:
    """Canonical values nested at most ``depth`` levels (well inside the codec's limit of 16)."""
    if depth == 0:
        return _scalars
    inner = _nested(depth - 1)
    return st.one_of(
        _scalars,
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    )


_values = _nested(4)


@given(_values)
def test_roundtrip(value: Any) -> None:
    data = codec.pack(value)
    assert codec.unpack(data) == value
    assert codec.pack(codec.unpack(data)) == data


@given(st.dictionaries(st.text(max_size=8), st.integers(0, 9), min_size=2, max_size=8))
def test_key_order_does_not_change_bytes(d: dict[str, int]) -> None:
    reordered = dict(reversed(list(d.items())))
    assert codec.pack(reordered) == codec.pack(d)


@settings(max_examples=500)
@given(st.binary(min_size=0, max_size=200))
def test_random_bytes_raise_only_codec_error(data: bytes) -> None:
    try:
        value = codec.unpack(data)
    except CodecError:
        return
    assert codec.pack(value) == data  # whatever decodes is canonical


@settings(max_examples=300)
@given(
    st.sampled_from(VECTOR_NAMES),
    st.integers(min_value=0),
    st.integers(min_value=1, max_value=255),
    st.sampled_from(["xor", "cut", "insert"]),
)
def test_mutated_vectors_raise_only_codec_error(name: str, at: int, byte: int, how: str) -> None:
    data = _vector(name)
    i = at % len(data)
    if how == "xor":
        mutated = data[:i] + bytes([data[i] ^ byte]) + data[i + 1 :]
    elif how == "cut":
        mutated = data[:i]
    else:
        mutated = data[:i] + bytes([byte]) + data[i:]
    try:
        value = codec.unpack(mutated)
    except CodecError:
        return
    assert codec.pack(value) == mutated
    assert value != codec.unpack(data)


def test_max_items_bounds_what_decoding_builds() -> None:
    """With ``max_items``, a message of millions of small values is refused after a few
    thousand are built (413 ``too_large``), whatever their nesting; a header that claims more
    items than the bytes could hold stays malformed (``bad_encoding``)."""
    ok = {"records": [b"r"] * 900, "endorsements": [b"e"] * 98}  # 1,000 with the map's 2
    assert codec.unpack(msgpack.packb(ok), canonical=False, max_items=1000) == ok
    for junk in ([0] * 100_000, {"records": [[0] * 900] * 100}, {"x": [{}] * 5000}):
        with pytest.raises(LimitError):
            codec.unpack(msgpack.packb(junk), canonical=False, max_items=1000)
    with pytest.raises(CodecError):
        codec.unpack(b"\x81\xa7records\xdd\xff\xff\xff\xff", canonical=False, max_items=1000)
