"""Errors of the operator laptop (``c1client``).

Every error carries a stable ``code``, an English message (``str(exc)``, used in logs) and an
Indonesian one (``pesan``) shown to operators by default. Problems with one *entry* are not
errors: they are rejections (``client.intake.Rejected``) or flags, and the other entries of the
same file are still saved.

Hierarchy::

    ClientError                     base class
    ├── ConfigError                 a setting or option with a bad value
    ├── InputError                  an input file (e.g. the polling-station master) unusable
    ├── SyncError                   a sync round with a hub failed (code says why: unreachable,
    │   │                           wrong_hub, forked, behind_hub, not_a_hub, ...)
    │   └── TooBigError             the hub found a push too big (413): halve the batch
    └── StoreError                  the local store cannot do what was asked
        ├── NotInitialisedError     no store in the data directory yet (run ``c1client init``)
        ├── AlreadyInitialisedError ``init`` with another name on an initialised directory
        ├── IdentityError           node.key missing, unreadable, or not the store's key
        ├── StoreDamagedError       the store's own bookkeeping disagrees (run ``verify``)
        ├── ReceiptError            a receipt that does not match what this laptop holds
        └── HubPinError             no hub pinned, or a different hub than the pinned one
"""

from __future__ import annotations


class ClientError(Exception):
    """Base class. ``code`` is stable; ``message`` is English, ``pesan`` Indonesian."""

    code = "client_error"

    def __init__(self, message: str, pesan: str | None = None, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.pesan = pesan if pesan is not None else message
        if code is not None:
            self.code = code

    def text(self, lang: str) -> str:
        """The message in ``lang`` (``"id"`` or ``"en"``)."""
        return self.pesan if lang == "id" else self.message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.message, "reason_id": self.pesan}


class ConfigError(ClientError):
    code = "bad_config"


class InputError(ClientError):
    code = "bad_input"


class SyncError(ClientError):
    """A sync round failed; the message says what to do. ``retry_after``: the hub asked not to
    be called again for that many seconds (HTTP 429/503 with Retry-After)."""

    code = "sync"

    def __init__(
        self,
        message: str,
        pesan: str | None = None,
        *,
        code: str | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message, pesan, code=code)
        self.retry_after = retry_after


class TooBigError(SyncError):
    """The hub (or a proxy before it) found a request too big (HTTP 413): send less at once."""


class StoreError(ClientError):
    code = "store"


class NotInitialisedError(StoreError):
    code = "not_initialised"


class AlreadyInitialisedError(StoreError):
    code = "already_initialised"


class IdentityError(StoreError):
    code = "identity"


class StoreDamagedError(StoreError):
    code = "store_damaged"


class ReceiptError(StoreError):
    code = "bad_receipt"


class HubPinError(StoreError):
    code = "hub_pin"
