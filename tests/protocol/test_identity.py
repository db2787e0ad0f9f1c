"""Node identities: fingerprints, comparison codes, signatures."""

from __future__ import annotations

import re

import pytest

from hub.protocol.errors import SignatureError
from hub.protocol.identity import (
    Identity,
    comparison_code,
    fingerprint,
    verify,
)

FINGERPRINT = re.compile(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}")
CODE = re.compile(r"[0-9]{4} [0-9]{4} [0-9]{4} [0-9]{4}")


def test_from_seed_is_deterministic(identity: Identity) -> None:
    same = Identity.from_seed(bytes(range(32)))
    assert same.public == identity.public
    assert same.node_id == identity.node_id
    assert same.seed() == bytes(range(32))
    assert Identity.from_seed(bytes(32)).public != identity.public


def test_fingerprint_format(identity: Identity) -> None:
    assert FINGERPRINT.fullmatch(identity.node_id)
    assert identity.node_id == fingerprint(identity.public)
    assert len(identity.public) == 32


def test_fingerprints_differ_per_key() -> None:
    ids = {Identity.from_seed(bytes([i]) * 32).node_id for i in range(200)}
    assert len(ids) == 200
    assert all(FINGERPRINT.fullmatch(i) for i in ids)


def test_comparison_code_format_and_sensitivity() -> None:
    hub_a, hub_b = (Identity.from_seed(bytes([i]) * 32).public for i in (1, 2))
    dev_a, dev_b = (Identity.from_seed(bytes([i]) * 32).public for i in (3, 4))
    code = comparison_code(hub_a, dev_a)
    assert CODE.fullmatch(code)
    assert comparison_code(hub_a, dev_a) == code
    assert comparison_code(hub_b, dev_a) != code
    assert comparison_code(hub_a, dev_b) != code
    assert comparison_code(dev_a, hub_a) != code  # the roles are part of the code


def test_comparison_codes_are_spread() -> None:
    hub = Identity.from_seed(b"\x01" * 32).public
    codes = {
        comparison_code(hub, Identity.from_seed(bytes([i]) * 32).public) for i in range(2, 102)
    }
    assert all(CODE.fullmatch(c) for c in codes)
    assert len(codes) >= 95


def test_sign_and_verify_with_domains(identity: Identity) -> None:
    sig = identity.sign(b"c1hub/test/v1", b"message")
    verify(identity.public, b"c1hub/test/v1", b"message", sig)
    with pytest.raises(SignatureError):
        verify(identity.public, b"c1hub/other/v1", b"message", sig)
    with pytest.raises(SignatureError):
        verify(identity.public, b"c1hub/test/v1", b"messagE", sig)
    # The separator keeps (domain, message) pairs apart: "a" + "bc" is not "ab" + "c".
    sig = identity.sign(b"a", b"bc")
    with pytest.raises(SignatureError):
        verify(identity.public, b"ab", b"c", sig)


def test_verify_with_another_key_fails(identity: Identity) -> None:
    other = Identity.from_seed(b"\x09" * 32)
    sig = identity.sign(b"d", b"m")
    with pytest.raises(SignatureError):
        verify(other.public, b"d", b"m", sig)


@pytest.mark.parametrize(
    ("public", "sig"),
    [(b"\x00" * 31, b"\x00" * 64), (b"\x00" * 32, b"\x00" * 63), (b"\xff" * 32, b"\x00" * 64)],
)
def test_verify_malformed_key_or_signature(public: bytes, sig: bytes) -> None:
    with pytest.raises(SignatureError):
        verify(public, b"d", b"m", sig)
