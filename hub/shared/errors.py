"""Errors of ``hub.shared`` (I/O both programs use).

Every error carries a stable ``code``, an English message (``str(exc)``, ``message``) and an
Indonesian one (``pesan``), so a laptop can show it to an operator as it is.

Hierarchy::

    SharedError          base class
    └── BlobError        a scan that cannot be stored or read (code says why: not_an_image,
                         incomplete, too_large, hash_mismatch, empty, not_a_hash, not_found,
                         unreadable, closed, damaged)
"""

from __future__ import annotations


class SharedError(Exception):
    code = "shared_error"

    def __init__(self, code: str, message: str, pesan: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.pesan = pesan if pesan is not None else message

    def text(self, lang: str) -> str:
        return self.pesan if lang == "id" else self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.message, "reason_id": self.pesan}


class BlobError(SharedError):
    """A scan that cannot be stored or read."""
