"""Signed records: make, decode, verify; any change to the bytes is caught."""

from __future__ import annotations

import hashlib
import random

import pytest

from hub.protocol import codec, entry, receipt, record
from hub.protocol.errors import CodecError, SignatureError
from hub.protocol.identity import Identity, verify
from hub.shared import generator

AT = 1707890400


def body(seed: int = 3, kind: str = "PPWP") -> bytes:
    f = generator.make_form(random.Random(seed), "3171011001001", kind, operator="Siti")
    return entry.encode_body(entry.parse(f), AT)


def test_make_decode_verify(identity: Identity) -> None:
    rec = record.make(identity, 1, record.GENESIS, body())
    assert rec.hash == hashlib.sha256(rec.raw).digest()
    got = record.decode(rec.raw)
    assert got == rec
    got.verify()
    assert got.origin == identity.public
    assert (got.seq, got.prev, got.body) == (1, record.GENESIS, body())
    assert codec.unpack(rec.raw) == [1, identity.public, 1, record.GENESIS, body(), rec.sig]


def test_chain_links_by_hash(identity: Identity) -> None:
    r1 = record.make(identity, 1, record.GENESIS, body(1))
    r2 = record.make(identity, 2, r1.hash, body(2))
    assert record.decode(r2.raw).prev == r1.hash
    assert r1.hash != r2.hash


def test_signing_is_deterministic(identity: Identity) -> None:
    assert record.make(identity, 5, bytes(32), body()).raw == (
        record.make(identity, 5, bytes(32), body()).raw
    )


def test_every_flipped_byte_is_caught(identity: Identity) -> None:
    rec = record.make(identity, 7, hashlib.sha256(b"prev").digest(), body(kind="DPR"))
    for i in range(len(rec.raw)):
        for mask in (0x01, 0x80):
            raw = rec.raw[:i] + bytes([rec.raw[i] ^ mask]) + rec.raw[i + 1 :]
            try:
                record.decode(raw).verify()
            except (CodecError, SignatureError):
                continue
            pytest.fail(f"flipping bit {mask:#x} of byte {i} went unnoticed")


def test_truncated_or_extended_record_is_rejected(identity: Identity) -> None:
    rec = record.make(identity, 1, record.GENESIS, body())
    for raw in (rec.raw[:-1], rec.raw + b"\x00", rec.raw[: len(rec.raw) // 2]):
        with pytest.raises(CodecError):
            record.decode(raw)


def test_signature_from_another_key_fails(identity: Identity) -> None:
    other = Identity.from_seed(b"\x07" * 32)
    rec = record.make(identity, 1, record.GENESIS, body())
    forged = record.make(other, 1, record.GENESIS, body())
    # The other key's signature under this origin: well-formed, but it does not verify.
    raw = codec.pack([1, identity.public, 1, record.GENESIS, body(), forged.sig])
    with pytest.raises(SignatureError):
        record.decode(raw).verify()
    # And this origin's signature under the other key's name fails the same way.
    raw = codec.pack([1, other.public, 1, record.GENESIS, body(), rec.sig])
    with pytest.raises(SignatureError):
        record.decode(raw).verify()


def test_domain_separation(identity: Identity) -> None:
    rec = record.make(identity, 1, record.GENESIS, body())
    rec.verify()
    with pytest.raises(SignatureError):
        verify(identity.public, receipt.DOMAIN, rec.signed_part(), rec.sig)
    # A receipt signature over the same bytes is not an entry signature.
    rc_sig = identity.sign(receipt.DOMAIN, rec.signed_part())
    raw = codec.pack([1, identity.public, 1, record.GENESIS, body(), rc_sig])
    with pytest.raises(SignatureError):
        record.decode(raw).verify()
    # A real receipt's signature cannot pass as a record's either.
    rc = receipt.issue(identity, identity.public, 1, rec.hash, AT)
    rc_payload, rc_sig2 = codec.unpack(rc.raw)
    verify(identity.public, receipt.DOMAIN, rc_payload, rc_sig2)
    with pytest.raises(SignatureError):
        verify(identity.public, record.DOMAIN, rc_payload, rc_sig2)


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([1, b"o" * 32, 1, bytes(32), b"b"], "array of 6"),
        ([1, b"o" * 32, 1, bytes(32), b"b", b"s" * 64, 0], "array of 6"),
        ([2, b"o" * 32, 1, bytes(32), b"b", b"s" * 64], "version 2 is not supported"),
        ([1, b"o" * 31, 1, bytes(32), b"b", b"s" * 64], "origin must be a 32-byte"),
        ([1, "o" * 32, 1, bytes(32), b"b", b"s" * 64], "origin must be a 32-byte"),
        ([1, b"o" * 32, 0, bytes(32), b"b", b"s" * 64], "seq must be a whole number >= 1"),
        ([1, b"o" * 32, -1, bytes(32), b"b", b"s" * 64], "seq must be"),
        ([1, b"o" * 32, 2**53 + 1, bytes(32), b"b", b"s" * 64], "seq must be"),
        ([1, b"o" * 32, 1, bytes(33), b"b", b"s" * 64], "prev must be a 32-byte hash"),
        ([1, b"o" * 32, 1, bytes(32), "b", b"s" * 64], "body must be bytes"),
        ([1, b"o" * 32, 1, bytes(32), b"b", b"s" * 63], "signature must be 64 bytes"),
    ],
)
def test_decode_rejects_bad_shapes(items: list[object], match: str) -> None:
    with pytest.raises(CodecError, match=match):
        record.decode(codec.pack(items))


def test_decode_rejects_non_array_and_oversize() -> None:
    with pytest.raises(CodecError, match="array of 6"):
        record.decode(codec.pack({"seq": 1}))
    with pytest.raises(CodecError, match="over the limit"):
        record.decode(codec.pack(b"x" * record.MAX_RECORD))


def test_record_limit_holds_the_largest_body(identity: Identity) -> None:
    big = b"x" * entry.MAX_BODY
    rec = record.make(identity, record.MAX_SEQ, bytes(32), big)
    assert record.decode(rec.raw).body == big
