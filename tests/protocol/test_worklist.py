"""The double-entry work list: pure, from entry facts, without numbers."""

from __future__ import annotations

import pytest

from hub.protocol import state, worklist
from hub.protocol.worklist import Query

A, B, C = b"A" * 32, b"B" * 32, b"C" * 32
E = "pemilu-2024"


def fact(h: str, origin: bytes, tps: str, numbers: bytes, form: str = "PPWP", sup: str = ""):
    return state.EntryFacts(
        hash=h.encode() * 32,
        origin=origin,
        key=(E, form, tps),
        numbers=worklist.digest(numbers),
        supersedes=sup.encode() * 32 if sup else None,
    )


T1, T2, T3, T4 = (f"317101100100{i}" for i in range(1, 5))
FACTS = [
    fact("a", A, T1, b"n1"),  # single, keyed by A
    fact("b", B, T2, b"n2"),  # single, keyed by B
    fact("c", A, T3, b"n3"),
    fact("d", B, T3, b"n3"),  # verified
    fact("e", A, T4, b"n4"),
    fact("f", B, T4, b"n4-other"),  # conflict
    fact("g", C, T1, b"x", form="DPR"),  # single DPR by C
]


def test_second_keying_excludes_what_the_asker_keyed() -> None:
    wl = worklist.build(FACTS, Query(asker=A))
    assert [(i.key[1], i.key[2]) for i in wl.second] == [("DPR", T1), ("PPWP", T2)]
    assert [i.key[2] for i in wl.correction] == [T4]
    other = worklist.build(FACTS, Query(asker=C))
    assert [(i.key[1], i.key[2]) for i in other.second] == [("PPWP", T1), ("PPWP", T2)]
    anyone = worklist.build(FACTS, Query())
    assert len(anyone.second) == 3


def test_readings_carry_digests_not_numbers() -> None:
    wl = worklist.build(FACTS, Query(asker=A))
    (conflict,) = wl.correction
    wire = conflict.to_wire(A)
    assert wire["status"] == "conflict"
    assert {(r["mine"], r["digest"]) for r in wire["live"]} == {
        (1, worklist.digest(b"n4")),
        (0, worklist.digest(b"n4-other")),
    }
    assert all(len(r["digest"]) == worklist.DIGEST_LEN for r in wire["live"])
    flat = repr(wl.to_wire(A))
    assert "n4" not in flat and "n2" not in flat


def test_filters_and_limit() -> None:
    wl = worklist.build(FACTS, Query(form="PPWP", tps_prefix=T2[:12], limit=10))
    assert [i.key[2] for i in wl.second] == [T1, T2]
    wl = worklist.build(FACTS, Query(election="other"))
    assert wl.second == [] and wl.correction == []
    wl = worklist.build(FACTS, Query(limit=1))
    assert len(wl.second) == 1 and wl.more_second == 2
    assert wl.to_wire(None)["more"] == {"second": 2, "correction": 0}


def test_a_correction_that_supersedes_the_wrong_reading_resolves_the_conflict() -> None:
    fixed = [*FACTS, fact("h", C, T4, b"n4", sup="f")]
    wl = worklist.build(fixed, Query(keys=((E, "PPWP", T4), (E, "PPWP", T3), (E, "DPD", T1))))
    assert wl.correction == []
    assert [(i.status, len(i.readings)) for i in wl.keys] == [
        ("verified", 2), ("verified", 2), ("none", 0),
    ]  # fmt: skip


def test_parse_key() -> None:
    assert worklist.parse_key("PPWP:3171011001001") == ("PPWP", "3171011001001")
    for bad in ("PPWP", "PPWP:31", ":3171011001001", "PPWP:317101100100x"):
        with pytest.raises(ValueError):
            worklist.parse_key(bad)
