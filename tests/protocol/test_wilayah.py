"""The polling-station master: which TPS exist, expected counts, shape checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.protocol.errors import SchemaError
from hub.protocol.wilayah import Master
from hub.shared.master import load_master

DATA: dict[str, Any] = {
    "id2name": {"31": "DKI JAKARTA", "3171": "KOTA JAKARTA PUSAT", "317101": "GAMBIR"},
    "tps": {
        "3171011001": [3],
        "3171011002": [2, 901, 903],
        "3171021001": [4],
        "3201011001": [1],
    },
}


@pytest.fixture
def master() -> Master:
    return Master.from_json(DATA)


@pytest.mark.parametrize(
    ("tps", "exists"),
    [
        ("3171011001001", True),
        ("3171011001003", True),
        ("3171011001004", False),
        ("3171011001000", False),
        ("3171011002002", True),
        ("3171011002003", False),
        ("3171011002900", False),
        ("3171011002901", True),
        ("3171011002903", True),
        ("3171011002904", False),
        ("3171011001901", False),  # no special TPS in that desa
        ("3171011003001", False),  # unknown desa
        ("317101100101", False),  # 12 digits
        ("31710110010011", False),  # 14 digits
        ("3171011001 01", False),
    ],
)
def test_tps_exists(master: Master, tps: str, exists: bool) -> None:
    assert master.tps_exists(tps) is exists


def test_expected_by_kecamatan(master: Master) -> None:
    assert master.expected_by_kecamatan() == {"317101": 5, "317102": 4, "320101": 1}
    assert master.expected_by_kecamatan("3171") == {"317101": 5, "317102": 4}
    assert master.expected_by_kecamatan("32") == {"320101": 1}
    assert master.expected_by_kecamatan("33") == {}


def test_tps_codes(master: Master) -> None:
    assert list(master.tps_codes("3171011002")) == ["3171011002001", "3171011002002"]
    assert list(master.tps_codes("3171011002", special=True)) == [
        "3171011002001",
        "3171011002002",
        "3171011002901",
        "3171011002902",
        "3171011002903",
    ]
    assert len(list(master.tps_codes())) == 10
    assert all(master.tps_exists(t) for t in master.tps_codes(special=True))


def test_names(master: Master) -> None:
    assert master.name("317101") == "GAMBIR"
    assert master.name("999999") == "999999"  # unknown codes show as themselves
    assert master.desa_codes("3171") == ["3171011001", "3171011002", "3171021001"]


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {},
        {"tps": []},
        {"tps": {}, "id2name": []},
        {"tps": {"317101100": [3]}},
        {"tps": {"31710110011": [3]}},
        {"tps": {"317101100x": [3]}},
        {"tps": {"3171011001": 3}},
        {"tps": {"3171011001": []}},
        {"tps": {"3171011001": [3, 901]}},
        {"tps": {"3171011001": [3, 901, 902, 903]}},
        {"tps": {"3171011001": [-1]}},
        {"tps": {"3171011001": [1000]}},
        {"tps": {"3171011001": ["3"]}},
        {"tps": {"3171011001": [True]}},
    ],
)
def test_bad_master_shape(obj: Any) -> None:
    with pytest.raises(SchemaError):
        Master.from_json(obj)


def test_bad_entry_is_named() -> None:
    with pytest.raises(SchemaError, match=r"tps\['3171011001'\] = \[3, 901\]"):
        Master.from_json({"tps": {"3171011001": [3, 901]}})


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "wilayah.json"
    path.write_text(json.dumps(DATA), encoding="utf-8")
    assert load_master(path).tps_exists("3171011002902")
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(SchemaError, match="is not valid JSON"):
        load_master(path)


def test_real_master(real_master: Master) -> None:
    assert real_master.tps_exists("3101011001001")
    assert real_master.tps_exists("3101011001018")
    assert not real_master.tps_exists("3101011001019")
    assert not real_master.tps_exists("3101011001999")
    assert real_master.tps_exists("3101011002901")  # [19, 901, 908]
    assert real_master.tps_exists("3101011002908")
    assert not real_master.tps_exists("3101011002909")
    assert real_master.name("31") == "DKI JAKARTA"
    jakarta = real_master.expected_by_kecamatan("31")
    assert sum(jakarta.values()) == 30_686
    assert sum(real_master.expected_by_kecamatan().values()) == 818_339
    assert len(real_master.desa_codes()) == 83_731
