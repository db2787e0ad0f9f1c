"""Signed receipts: "I durably hold origin X's log up to seq N, whose record hash is H".

Wire form: ``[payload: bin, sig: bin64]`` where payload is
``pack({"at": int, "hash": bin32, "issuer": bin32, "origin": bin32, "seq": int})`` and sig is the
issuer's Ed25519 signature, domain ``c1hub/receipt/v1``. A receipt is issued only after the
records it names are durably committed. Because each record names its predecessor's hash, a
receipt for (X, N, H) covers every record of X up to N.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import codec
from .errors import CodecError, SignatureError
from .identity import Identity, verify

DOMAIN = b"c1hub/receipt/v1"


@dataclass(frozen=True, slots=True)
class Receipt:
    issuer: bytes
    origin: bytes
    seq: int
    hash: bytes
    at: int
    raw: bytes = b""

    def check(self, issuer: bytes) -> None:
        """Raise SignatureError unless signed by ``issuer`` (the pinned hub key)."""
        payload, sig = _split(self.raw)
        if self.issuer != issuer:
            raise SignatureError("receipt was issued by another node than the pinned hub")
        verify(issuer, DOMAIN, payload, sig)


def issue(ident: Identity, origin: bytes, seq: int, hash_: bytes, at: int) -> Receipt:
    payload = codec.pack(
        {"at": at, "hash": hash_, "issuer": ident.public, "origin": origin, "seq": seq}
    )
    raw = codec.pack([payload, ident.sign(DOMAIN, payload)])
    return Receipt(ident.public, origin, seq, hash_, at, raw)


def _split(raw: bytes) -> tuple[bytes, bytes]:
    obj = codec.unpack(raw, max_size=4096)
    if type(obj) is not list or len(obj) != 2 or type(obj[0]) is not bytes:
        raise CodecError("a receipt is [payload, signature]")
    if type(obj[1]) is not bytes:
        raise CodecError("receipt signature must be bytes")
    return obj[0], obj[1]


def decode(raw: bytes) -> Receipt:
    """Parse a receipt (shape only; call ``check`` with the expected issuer)."""
    payload, _sig = _split(raw)
    p = codec.unpack(payload, max_size=4096)
    if type(p) is not dict or set(p) != {"at", "hash", "issuer", "origin", "seq"}:
        raise CodecError("receipt payload must have at, hash, issuer, origin, seq")
    for k in ("hash", "issuer", "origin"):
        if type(p[k]) is not bytes or len(p[k]) != 32:
            raise CodecError(f"receipt {k} must be 32 bytes")
    if type(p["seq"]) is not int or p["seq"] < 0 or type(p["at"]) is not int:
        raise CodecError("receipt seq and at must be whole numbers")
    return Receipt(p["issuer"], p["origin"], p["seq"], p["hash"], p["at"], raw)


UPSTREAM_DOMAIN = b"c1hub/upstream/v1"


def vouch_upstream(hub: Identity, upstream_public: bytes) -> bytes:
    """The hub's signature naming its upstream's key, so laptops can trust the "confirmed
    upstream" receipts it relays (``/v1/hello`` is plain HTTP)."""
    return hub.sign(UPSTREAM_DOMAIN, upstream_public)


def check_upstream(hub_public: bytes, upstream_public: bytes, sig: bytes) -> None:
    """Raise SignatureError unless the (pinned) hub signed ``upstream_public`` as its upstream."""
    verify(hub_public, UPSTREAM_DOMAIN, upstream_public, sig)
