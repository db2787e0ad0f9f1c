"""Node identities: Ed25519 keys, readable fingerprints, comparison codes, signatures.

A node's id is a fingerprint of its public key that a person can read aloud: twelve base32
characters in three groups (``K7QF-3MZD-X2PA``), 60 bits of SHA-256. The comparison code
shown on both screens during enrollment is sixteen digits derived from both keys: finding a key
that matches a given code takes about 2**53 tries, years of one machine's work.

Signatures are domain-separated: ``sign(key, DOMAIN, message)`` signs ``DOMAIN + b"\\0" +
message`` so a signature made for one purpose (an entry) can never be replayed as another (a
receipt).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from .errors import SignatureError

PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


class Identity:
    """A node's private key and the values derived from it."""

    __slots__ = ("_key", "node_id", "public")

    def __init__(self, key: Ed25519PrivateKey):
        self._key = key
        self.public: bytes = key.public_key().public_bytes_raw()
        self.node_id: str = fingerprint(self.public)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Deterministic identity from a 32-byte seed (test vectors and the demo only)."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, domain: bytes, message: bytes) -> bytes:
        return self._key.sign(domain + b"\0" + message)

    def seed(self) -> bytes:
        return self._key.private_bytes_raw()


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def fingerprint(public: bytes) -> str:
    """``XXXX-XXXX-XXXX``: 60 bits of SHA-256(public key) in RFC 4648 base32."""
    digest = hashlib.sha256(b"c1hub-node-id\0" + public).digest()
    text = base64.b32encode(digest).decode()[:12]
    return f"{text[0:4]}-{text[4:8]}-{text[8:12]}"


def comparison_code(hub_public: bytes, device_public: bytes) -> str:
    """Sixteen digits in four groups, ``"1234 5678 9012 3456"``, that both screens show while a
    device enrolls. Codes are public (``/v1/devices``), so they must be too long to forge: a
    six-digit code could be matched with a new key in seconds."""
    digest = hashlib.sha256(b"c1hub-pair\0" + hub_public + device_public).digest()
    digits = f"{int.from_bytes(digest[:8], 'big') % 10**16:016d}"
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


@lru_cache(maxsize=4096)
def _verify_key(public: bytes) -> VerifyKey:
    return VerifyKey(public)


def verify(public: bytes, domain: bytes, message: bytes, signature: bytes) -> None:
    """Raise SignatureError unless ``signature`` is ``public``'s over ``domain``+``message``.

    Verification uses libsodium (PyNaCl) on every node: it is about twice as fast as OpenSSL's
    Ed25519 here, releases the GIL, and — one library everywhere — every node agrees on which
    signatures are valid (libsodium also refuses small-order keys and non-canonical S).
    Keys are made and signatures produced with ``cryptography``; both are standard Ed25519.
    """
    if len(public) != PUBLIC_KEY_LEN or len(signature) != SIGNATURE_LEN:
        raise SignatureError("key or signature has the wrong length")
    try:
        _verify_key(public).verify(domain + b"\0" + message, signature)
    except (CryptoError, ValueError, TypeError):
        raise SignatureError("signature does not verify") from None
