"""Enrollment requests and endorsements (hub.protocol.enroll): what a hub opens and what it
refuses, without a hub."""

from __future__ import annotations

from typing import Any

import pytest

from hub.protocol import codec, enroll
from hub.protocol.errors import CodecError, ProtocolError, SchemaError, SignatureError
from hub.protocol.identity import Identity

AT = 1_707_890_400


@pytest.fixture(scope="module")
def hub() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def device() -> Identity:
    return Identity.generate()


def signed_request(device: Identity, hub_public: bytes, **changes: Any) -> bytes:
    """A request signed by ``device`` whose payload fields are changed as given (so that a
    bad field reaches the checks with a good signature)."""
    p: dict[str, Any] = {"at": AT, "device": device.public, "hub": hub_public,
                         "name": "Meja 7", "role": "laptop"}  # fmt: skip
    p.update(changes)
    payload = codec.pack(p)
    return codec.pack([payload, device.sign(enroll.ENROLL_DOMAIN, payload)])


def signed_endorsement(hub: Identity, device: bytes, **changes: Any) -> bytes:
    p: dict[str, Any] = {"approved_at": AT, "device": device, "hub": hub.public,
                         "name": "Meja 7", "role": "laptop"}  # fmt: skip
    p.update(changes)
    payload = codec.pack(p)
    return codec.pack([payload, hub.sign(enroll.ENDORSE_DOMAIN, payload)])


def test_request_round_trip(hub: Identity, device: Identity) -> None:
    raw = enroll.make_request(device, hub.public, "Meja 7", "laptop", AT)
    req = enroll.open_request(raw, hub.public)
    assert (req.device, req.hub, req.name, req.role, req.at) == (
        device.public, hub.public, "Meja 7", "laptop", AT
    )  # fmt: skip


def test_endorsement_round_trip(hub: Identity, device: Identity) -> None:
    raw = enroll.endorse(hub, device.public, "Meja 7", "hub", AT)
    e = enroll.open_endorsement(raw)
    assert (e.device, e.hub, e.name, e.role, e.approved_at, e.raw) == (
        device.public, hub.public, "Meja 7", "hub", AT, raw
    )  # fmt: skip


@pytest.mark.parametrize(
    "name", ["", "Meja 7", "x" * 120, "Méja 7 — Ruang B", "桌 7", "Meja\u200b7", "Meja\u00a07"]
)
def test_names_that_are_taken(hub: Identity, device: Identity, name: str) -> None:
    assert enroll.open_request(signed_request(device, hub.public, name=name), hub.public).name \
        == name  # fmt: skip
    assert enroll.open_endorsement(signed_endorsement(hub, device.public, name=name)).name == name


def name_refusals(hub: Identity, device: Identity, name: object) -> list[SchemaError]:
    """The errors of opening a request and an endorsement, each naming ``name``; each must be
    ``bad_entry`` for field ``name``."""
    found = []
    for opening in (
        lambda: enroll.open_request(signed_request(device, hub.public, name=name), hub.public),
        lambda: enroll.open_endorsement(signed_endorsement(hub, device.public, name=name)),
    ):
        with pytest.raises(SchemaError) as err:
            opening()
        assert (err.value.code, err.value.field) == ("bad_entry", "name")
        found.append(err.value)
    return found


@pytest.mark.parametrize("name", ["x" * 121, b"Meja 7", 7, ["Meja 7"]])
def test_a_name_that_is_not_short_text_is_refused(
    hub: Identity, device: Identity, name: object
) -> None:
    assert len(name_refusals(hub, device, name)) == 2


def test_other_refusals(hub: Identity, device: Identity) -> None:
    with pytest.raises(SchemaError) as err:
        enroll.open_request(signed_request(device, hub.public, role="root"), hub.public)
    assert err.value.field == "role"
    with pytest.raises(SchemaError) as err:
        enroll.open_request(signed_request(device, hub.public), Identity.generate().public)
    assert err.value.field == "hub"
    with pytest.raises(CodecError):
        enroll.open_request(signed_request(device, hub.public, at="now"), hub.public)
    with pytest.raises(CodecError):
        enroll.open_request(signed_request(device, hub.public, extra=1), hub.public)
    raw = bytearray(enroll.make_request(device, hub.public, "Meja 7", "laptop", AT))
    raw[-2] ^= 1
    with pytest.raises(SignatureError):
        enroll.open_request(bytes(raw), hub.public)
    with pytest.raises(ProtocolError):
        enroll.open_request(b"\xc1", hub.public)


REFUSED_NAMES = [
    pytest.param("\rMeja 1      approved", id="carriage-return"),
    pytest.param("Meja 7\n2026-02-14 08:00:00 WARNING hub.node: approved", id="line-feed"),
    pytest.param("Meja\t7", id="tab"),
    pytest.param("\x1b[2J\x1b[HMeja 1", id="escape"),
    pytest.param("Meja\x00 7", id="nul"),
    pytest.param("Meja\x7f7", id="delete"),
    pytest.param("Meja\x857", id="c1-next-line"),
    pytest.param("Meja\x9b7", id="c1-csi"),
    pytest.param("Meja\u20287", id="line-separator"),
    pytest.param("Meja\u20297", id="paragraph-separator"),
    pytest.param("Meja \u202e7 ajeM", id="bidi-override"),
    pytest.param("Meja \u20667\u2069", id="bidi-isolate"),
    pytest.param("Meja \u200f7", id="right-to-left-mark"),
]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_a_name_with_a_refused_character_is_refused(
    hub: Identity, device: Identity, name: str
) -> None:
    for err in name_refusals(hub, device, name):
        # The reason names the character, never the name: it is logged and sent back.
        assert name not in err.message
        assert "U+" in err.message
