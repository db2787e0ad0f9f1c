"""Errors of the c1hub protocol.

Every error carries a stable ``code`` (documented in docs/protocol.md) and a message a person
can act on. The HTTP layer maps codes to status codes in one place.

Hierarchy::

    ProtocolError
    ├── CodecError            bytes that are not a well-formed, canonical message
    ├── SchemaError           a decoded entry/JSON object that breaks the entry schema
    ├── SignatureError        a signature that does not verify
    ├── ChainError            seq/previous-hash continuity broken
    ├── ForkError             same (origin, seq) with different bytes
    ├── DeviceError           origin unknown, pending, or revoked where that matters
    └── LimitError            a body, batch or field over its limit
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class. ``code`` is stable; ``field`` names the offending field if any; ``message``
    is English and ``pesan`` Indonesian (the same text where no translation was given)."""

    code = "protocol_error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        pesan: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.pesan = pesan if pesan is not None else message  # Indonesian, for operators
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        d = {"code": self.code, "reason": self.message}
        if self.field is not None:
            d["field"] = self.field
        return d


class CodecError(ProtocolError):
    code = "bad_encoding"


class SchemaError(ProtocolError):
    code = "bad_entry"


class SignatureError(ProtocolError):
    code = "bad_signature"


class ChainError(ProtocolError):
    code = "bad_chain"


class ForkError(ProtocolError):
    code = "fork"


class DeviceError(ProtocolError):
    code = "device"


class LimitError(ProtocolError):
    code = "too_large"
