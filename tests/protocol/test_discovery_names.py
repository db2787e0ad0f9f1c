"""DNS-SD names, TXT records and the interface option, without any network."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.protocol.discovery_names import (
    DISCOVERY_VERSION,
    MAX_LABEL_BYTES,
    RENAME_RESERVE,
    SERVICE_TYPE,
    TxtError,
    build_txt,
    clean_name,
    host_name,
    instance_name,
    parse_interfaces,
    parse_txt,
)
from hub.protocol.identity import Identity, fingerprint

IDENT = Identity.from_seed(bytes(range(32)))
OTHER = Identity.from_seed(bytes(range(1, 33)))


def as_wire(props: dict[str, str]) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in props.items()}


def good_txt(**changes: str) -> dict[bytes, bytes | None]:
    props = build_txt(node_id=IDENT.node_id, public=IDENT.public, role="hub", name="Ruang A")
    props.update(changes)
    return as_wire(props)


# --- parse_interfaces ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "  ", "all", "ALL", " all ", "*"])
def test_every_interface(value: str | None) -> None:
    assert parse_interfaces(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", ["127.0.0.1"]),
        ("127.0.0.1,10.0.0.5", ["127.0.0.1", "10.0.0.5"]),
        (" 10.0.0.5 , 127.0.0.1 ,", ["10.0.0.5", "127.0.0.1"]),
        ("10.0.0.5,10.0.0.5", ["10.0.0.5"]),
    ],
)
def test_interface_list(value: str, expected: list[str]) -> None:
    assert parse_interfaces(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("eth0", "not an IPv4 address"),
        ("10.0.0.256", "not an IPv4 address"),
        ("::1", "only IPv4"),
        ("0.0.0.0", "use 'all'"),
        ("224.0.0.251", "not an interface address"),
        ("127.0.0.1,all", "cannot be combined"),
    ],
)
def test_bad_interfaces(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_interfaces(value)


# --- names -----------------------------------------------------------------------------------


def test_instance_name_shape() -> None:
    name = instance_name("Ruang A", IDENT.node_id)
    assert name == f"c1hub Ruang A {IDENT.node_id}.{SERVICE_TYPE}"
    assert instance_name("", IDENT.node_id) == f"c1hub {IDENT.node_id}.{SERVICE_TYPE}"
    assert instance_name("\n\t", IDENT.node_id) == f"c1hub {IDENT.node_id}.{SERVICE_TYPE}"


def test_instance_name_has_no_extra_labels() -> None:
    name = instance_name("Hotel lt.3 . ruang.B", IDENT.node_id)
    label = name[: -len(SERVICE_TYPE) - 1]
    assert "." not in label
    assert label == f"c1hub Hotel lt-3 - ruang-B {IDENT.node_id}"


@given(st.text(max_size=300))
def test_instance_label_fits_and_keeps_node_id(name: str) -> None:
    full = instance_name(name, IDENT.node_id)
    assert full.endswith(f" {IDENT.node_id}.{SERVICE_TYPE}")
    label = full[: -len(SERVICE_TYPE) - 1]
    assert len(label.encode()) <= MAX_LABEL_BYTES - RENAME_RESERVE
    assert "." not in label
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in label)


@given(st.text(max_size=300), st.integers(min_value=0, max_value=80))
def test_clean_name_is_bounded_and_printable(name: str, limit: int) -> None:
    cleaned = clean_name(name, limit)
    assert len(cleaned.encode()) <= limit
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert all(c.isprintable() for c in cleaned)


def test_clean_name_cuts_between_characters() -> None:
    assert clean_name("ééé", 5) == "éé"  # 2 bytes each: a third would not fit
    assert clean_name("a\x1b[31mb\u200bc") == "a[31mbc"


def test_host_name() -> None:
    assert host_name("ABCD-EFGH-2345") == "c1hub-abcd-efgh-2345.local."


# --- TXT -------------------------------------------------------------------------------------


def test_txt_round_trip() -> None:
    props = build_txt(node_id=IDENT.node_id, public=IDENT.public, role="root", name="Pusat")
    assert props == {
        "id": IDENT.node_id,
        "pk": IDENT.public.hex(),
        "v": DISCOVERY_VERSION,
        "role": "root",
        "name": "Pusat",
    }
    txt = parse_txt(as_wire(props))
    assert (txt.node_id, txt.public, txt.version, txt.role, txt.name) == (
        IDENT.node_id,
        IDENT.public,
        "1",
        "root",
        "Pusat",
    )


def test_build_txt_refuses_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        build_txt(node_id=OTHER.node_id, public=IDENT.public, role="hub", name="x")
    with pytest.raises(ValueError, match="role"):
        build_txt(node_id=IDENT.node_id, public=IDENT.public, role="laptop", name="x")
    with pytest.raises(ValueError, match="32 bytes"):
        build_txt(node_id=IDENT.node_id, public=IDENT.public[:31], role="hub", name="x")


def test_txt_keys_are_case_insensitive_and_first_wins() -> None:
    wire = {b"V": b"1", b"ID": IDENT.node_id.encode(), b"Role": b"hub", b"role": b"root"}
    txt = parse_txt(wire)
    assert txt.node_id == IDENT.node_id and txt.role == "hub" and txt.public is None


def test_txt_without_key_has_no_public() -> None:
    wire = good_txt()
    del wire[b"pk"]
    assert parse_txt(wire).public is None


def test_txt_name_is_cleaned_and_optional() -> None:
    wire = good_txt()
    wire[b"name"] = "Ruang\x07 B\xff".encode("latin-1")
    assert parse_txt(wire).name == "Ruang B\ufffd"
    del wire[b"name"]
    assert parse_txt(wire).name == ""


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ({}, "'v' is missing"),
        (good_txt(v="2"), "protocol version '2'"),
        ({**good_txt(), b"v": None}, "'v' is missing"),
        (good_txt(id="abcd-efgh-2345"), "not a node id"),
        (good_txt(id=OTHER.node_id), "does not match"),
        (good_txt(pk="zz" * 32), "64-character hex"),
        (good_txt(pk=IDENT.public.hex()[:62]), "64-character hex"),
        (good_txt(role="laptop"), "role 'laptop'"),
        ({**good_txt(), b"role": "hüb".encode()}, "not ASCII"),
    ],
)
def test_malformed_txt(wire: dict[bytes, bytes | None], message: str) -> None:
    with pytest.raises(TxtError, match=message):
        parse_txt(wire)


def test_other_version_is_refused_before_other_keys() -> None:
    with pytest.raises(TxtError, match="version"):
        parse_txt({b"v": b"2", b"id": b"whatever"})


@given(st.dictionaries(st.binary(max_size=8), st.none() | st.binary(max_size=80), max_size=8))
def test_parse_txt_only_raises_txt_error(wire: dict[bytes, bytes | None]) -> None:
    try:
        txt = parse_txt(wire)
    except TxtError:
        return
    assert txt.version == DISCOVERY_VERSION
    assert txt.role in ("hub", "root")
    assert txt.public is None or fingerprint(txt.public) == txt.node_id


def test_importing_names_loads_no_network_library() -> None:
    code = (
        "import sys, hub.protocol.discovery_names\n"
        "bad = {'zeroconf', 'aiohttp', 'aiosqlite', 'ifaddr'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
