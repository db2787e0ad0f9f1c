"""The signed record: one entry body in its origin's append-only log.

Wire form (canonical msgpack array, docs/protocol.md "Records")::

    [1, origin: bin32, seq: int>=1, prev: bin32, body: bin, sig: bin64]

``sig`` is the origin's Ed25519 signature, domain ``c1hub/entry/v1``, over
``pack([1, origin, seq, prev, body])``. ``prev`` is the hash of the origin's record at
``seq - 1`` (32 zero bytes for seq 1). A record's hash is SHA-256 of its full bytes. These bytes
are produced once, on the laptop, and carried unchanged to the root.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import codec
from .errors import CodecError
from .identity import Identity, verify

VERSION = 1
DOMAIN = b"c1hub/entry/v1"
GENESIS = bytes(32)
MAX_RECORD = 72 * 1024
MAX_SEQ = 2**53


@dataclass(frozen=True, slots=True)
class Record:
    origin: bytes
    seq: int
    prev: bytes
    body: bytes
    sig: bytes
    raw: bytes
    hash: bytes

    def signed_part(self) -> bytes:
        """``pack([1, origin, seq, prev, body])``: in canonical form that is ``raw`` with a
        5-item array header and without the trailing signature (bin8 of 64 bytes: 66 bytes)."""
        return b"\x95" + self.raw[1:-66]

    def verify(self) -> None:
        """Raise SignatureError unless ``sig`` is the origin's over this record."""
        verify(self.origin, DOMAIN, self.signed_part(), self.sig)


def make(ident: Identity, seq: int, prev: bytes, body: bytes) -> Record:
    """Sign ``body`` as record ``seq`` of ``ident``'s log."""
    unsigned = codec.pack([VERSION, ident.public, seq, prev, body])
    sig = ident.sign(DOMAIN, unsigned)
    raw = codec.pack([VERSION, ident.public, seq, prev, body, sig])
    return Record(ident.public, seq, prev, body, sig, raw, hashlib.sha256(raw).digest())


def decode(raw: bytes) -> Record:
    """Parse record bytes (shape only; call ``verify`` for the signature)."""
    # A record holds no maps, so re-encoding as-is checks canonical form (shortest ints,
    # bin types) without the general sorting pass.
    obj = codec.unpack(raw, max_size=MAX_RECORD, canonical=False)
    if type(obj) is list and codec.pack_ordered(obj) != raw:
        raise CodecError("record is valid msgpack but not in canonical form")
    if type(obj) is not list or len(obj) != 6:
        raise CodecError("a record is an array of 6 items")
    version, origin, seq, prev, body, sig = obj
    if version != VERSION:
        raise CodecError(f"record version {version!r} is not supported (this node speaks 1)")
    if type(origin) is not bytes or len(origin) != 32:
        raise CodecError("record origin must be a 32-byte Ed25519 public key")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise CodecError("record seq must be a whole number >= 1")
    if type(prev) is not bytes or len(prev) != 32:
        raise CodecError("record prev must be a 32-byte hash")
    if type(body) is not bytes:
        raise CodecError("record body must be bytes")
    if type(sig) is not bytes or len(sig) != 64:
        raise CodecError("record signature must be 64 bytes")
    return Record(origin, seq, prev, body, sig, raw, hashlib.sha256(raw).digest())
