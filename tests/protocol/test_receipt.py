"""Signed receipts: issue, decode, check against the pinned hub key."""

from __future__ import annotations

import hashlib

import pytest

from hub.protocol import codec, receipt
from hub.protocol.errors import CodecError, SignatureError
from hub.protocol.identity import Identity

HUB = Identity.from_seed(b"\x01" * 32)
LAPTOP = Identity.from_seed(b"\x02" * 32)
H = hashlib.sha256(b"record 12").digest()
AT = 1707890460


def test_issue_decode_check() -> None:
    rc = receipt.issue(HUB, LAPTOP.public, 12, H, AT)
    got = receipt.decode(rc.raw)
    assert got == rc
    assert (got.issuer, got.origin, got.seq, got.hash, got.at) == (
        HUB.public,
        LAPTOP.public,
        12,
        H,
        AT,
    )
    got.check(HUB.public)


def test_wrong_issuer_is_rejected() -> None:
    rc = receipt.decode(receipt.issue(HUB, LAPTOP.public, 12, H, AT).raw)
    with pytest.raises(SignatureError, match="another node than the pinned hub"):
        rc.check(LAPTOP.public)


def test_receipt_signed_by_an_impostor_is_rejected() -> None:
    impostor = Identity.from_seed(b"\x03" * 32)
    payload = codec.pack(
        {"at": AT, "hash": H, "issuer": HUB.public, "origin": LAPTOP.public, "seq": 12}
    )
    raw = codec.pack([payload, impostor.sign(receipt.DOMAIN, payload)])
    rc = receipt.decode(raw)
    assert rc.issuer == HUB.public  # it claims to be from the hub ...
    with pytest.raises(SignatureError, match="does not verify"):
        rc.check(HUB.public)  # ... but the hub did not sign it


def test_tampered_payload_is_rejected() -> None:
    rc = receipt.issue(HUB, LAPTOP.public, 12, H, AT)
    payload, sig = codec.unpack(rc.raw)
    fields = codec.unpack(payload)
    fields["seq"] = 13
    raw = codec.pack([codec.pack(fields), sig])
    got = receipt.decode(raw)
    assert got.seq == 13
    with pytest.raises(SignatureError):
        got.check(HUB.public)


def test_every_flipped_byte_is_caught() -> None:
    raw = receipt.issue(HUB, LAPTOP.public, 12, H, AT).raw
    for i in range(len(raw)):
        bad = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        try:
            receipt.decode(bad).check(HUB.public)
        except (CodecError, SignatureError):
            continue
        pytest.fail(f"flipping byte {i} went unnoticed")


def test_an_entry_signature_is_not_a_receipt() -> None:
    payload = codec.pack(
        {"at": AT, "hash": H, "issuer": HUB.public, "origin": LAPTOP.public, "seq": 12}
    )
    raw = codec.pack([payload, HUB.sign(b"c1hub/entry/v1", payload)])
    with pytest.raises(SignatureError):
        receipt.decode(raw).check(HUB.public)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"at": AT, "hash": H, "issuer": HUB.public, "origin": LAPTOP.public}, "must have"),
        (
            {"at": AT, "hash": H, "issuer": HUB.public, "origin": LAPTOP.public, "seq": 1, "x": 1},
            "must have",
        ),
        ({"at": AT, "hash": H[:31], "issuer": HUB.public, "origin": H, "seq": 1}, "hash must be"),
        ({"at": AT, "hash": H, "issuer": "hub", "origin": H, "seq": 1}, "issuer must be"),
        ({"at": AT, "hash": H, "issuer": H, "origin": H, "seq": -1}, "whole numbers"),
        ({"at": "now", "hash": H, "issuer": H, "origin": H, "seq": 1}, "whole numbers"),
    ],
)
def test_decode_rejects_bad_payloads(payload: dict[str, object], match: str) -> None:
    raw = codec.pack([codec.pack(payload), b"s" * 64])
    with pytest.raises(CodecError, match=match):
        receipt.decode(raw)


@pytest.mark.parametrize(
    "obj",
    [[b"payload"], [b"payload", b"sig", b"more"], ["payload", b"sig"], [b"payload", "sig"], {}],
)
def test_decode_rejects_bad_envelopes(obj: object) -> None:
    with pytest.raises(CodecError):
        receipt.decode(codec.pack(obj))


def test_decode_rejects_payload_that_is_not_msgpack() -> None:
    with pytest.raises(CodecError):
        receipt.decode(codec.pack([b"\xc1", b"s" * 64]))


def test_upstream_vouch_binds_the_hub_to_its_upstream() -> None:
    from hub.protocol.errors import SignatureError
    from hub.protocol.identity import Identity
    from hub.protocol.receipt import check_upstream, vouch_upstream

    hub, upstream, mallory = Identity.generate(), Identity.generate(), Identity.generate()
    sig = vouch_upstream(hub, upstream.public)
    check_upstream(hub.public, upstream.public, sig)
    with pytest.raises(SignatureError):  # someone on the LAN names their own key
        check_upstream(hub.public, mallory.public, sig)
    with pytest.raises(SignatureError):
        check_upstream(hub.public, mallory.public, vouch_upstream(mallory, mallory.public))
