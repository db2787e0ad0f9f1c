"""Errors of ``hub.shared``.

Hierarchy::

    SharedError                  base of everything raised here
    ├── DatabaseError            a SQLite file cannot be opened, migrated or written
    │   ├── SchemaTooNew         written by a newer program (upgrade it)
    │   ├── StoreBusy            another process holds the write lock past the busy timeout
    │   └── WriteFailed          a write transaction failed and was rolled back
    ├── CallError                a msgpack-over-HTTP call to another node failed (``kind`` says how)
    └── BlobError                a scan that cannot be stored or read (``code`` says why:
                                 not_an_image, incomplete, too_large, hash_mismatch, empty,
                                 not_a_hash, not_found, unreadable, closed, damaged); it carries
                                 an Indonesian message too (``pesan``), for the operator

Each program maps these to its own errors (bilingual on the laptop, HTTP codes on the hub).
"""

from __future__ import annotations


class SharedError(Exception):
    """Base class of the errors raised by ``hub.shared``."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class DatabaseError(SharedError):
    pass


class SchemaTooNew(DatabaseError):
    def __init__(self, message: str, *, version: int = 0):
        super().__init__(message)
        self.version = version  # the schema version the file is at


class StoreBusy(DatabaseError):
    pass


class WriteFailed(DatabaseError):
    def __init__(self, message: str, cause: BaseException):
        super().__init__(message)
        self.cause = cause


# What went wrong with a call (``CallError.kind``).
UNREACHABLE = "unreachable"  # no connection, reset, timeout
BUSY = "busy"  # 429/502/503/504: try again later (``retry_after`` when the peer said)
TOO_BIG = "too_big"  # 413: send less at a time
REFUSED = "refused"  # another 4xx/5xx with the peer's own code and reason
NOT_C1HUB = "not_c1hub"  # the answer is not a c1hub reply
IMPOSTOR = "impostor"  # the peer names a key it cannot prove it holds


class CallError(SharedError):
    def __init__(
        self,
        message: str,
        *,
        kind: str,
        status: int | None = None,
        code: str = "",
        reason: str = "",
        retry_after: float | None = None,
        node_id: str = "",
    ):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.code = code or kind
        self.reason = reason  # the peer's reason; for ``unreachable``, the network error
        self.retry_after = retry_after
        self.node_id = node_id  # for ``impostor``: the node id the peer named


class BlobError(SharedError):
    """A scan that cannot be stored or read: a stable ``code``, an English message and an
    Indonesian one (``pesan``), so a laptop can show it to an operator as it is."""

    def __init__(self, code: str, message: str, pesan: str | None = None):
        super().__init__(message)
        self.code = code
        self.pesan = pesan if pesan is not None else message

    def text(self, lang: str) -> str:
        return self.pesan if lang == "id" else self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.message, "reason_id": self.pesan}
