"""Errors of the hub process (not of the protocol: see ``hub.protocol.errors``).

Hierarchy::

    HubError
    ├── NotInitialised     the data folder has no hub (run `c1hub init`)
    ├── AlreadyRunning     another `c1hub serve` holds the data folder
    ├── NotPrivate         the data folder or admin.token is open to other users (exit 2)
    └── UpstreamError      a call to the upstream failed (carries Retry-After, too-big)
    hub.protocol.errors.ProtocolError  (mapped to HTTP by ``server.error_middleware``)
    ├── NotFound           code not_found     -> 404
    ├── Unauthorized       code unauthorized  -> 401
    ├── AdminLocalOnly     code admin_local_only -> 403 (admin from elsewhere than the hub
    │                      machine itself, or from a web page: ``hub.access``)
    ├── Busy               code busy          -> 503 (with Retry-After)
    │   ├── DiskFull       code disk_full     -> 503 (a scan cannot be stored: no space)
    │   └── BlobsUnavailable code unavailable -> 503 (the object store cannot be reached)
    └── BlobRefused        a scan upload or request refused; ``code`` says why (see
                           HTTP_STATUS: not_named, offset_mismatch, blob_too_large,
                           not_an_image, incomplete, hash_mismatch, empty, bad_range,
                           range_not_satisfiable)
"""

from __future__ import annotations

from hub.protocol.errors import ProtocolError


class HubError(Exception):
    """Base of process-level errors; the message says what to do. ``code`` is stable (the
    command line prints it with ``--json``)."""

    code = "hub_error"


class NotInitialised(HubError):
    code = "not_initialised"


class AlreadyRunning(HubError):
    code = "already_running"


class NotPrivate(HubError):
    """The data folder or ``admin.token`` is readable or writable by other users; the
    message names the ``chmod`` to run. The command line exits 2 (like bad usage)."""

    code = "not_private"


class UpstreamError(HubError):
    """A call upstream failed; the forwarder backs off and retries (its only retry layer)."""

    code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        too_big: bool = False,
        code: str = "",
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.too_big = too_big
        self.refusal = code  # upstream's own code when it refused (else "")


class NotFound(ProtocolError):
    code = "not_found"


class Unauthorized(ProtocolError):
    code = "unauthorized"


class AdminLocalOnly(ProtocolError):
    code = "admin_local_only"


class Busy(ProtocolError):
    """No room for a request body under ``max_inflight_bytes`` in time: 503 with Retry-After."""

    code = "busy"
    retry_after = 5


class DiskFull(Busy):
    """No space to store a scan: 503 with Retry-After; nothing of the chunk is kept."""

    code = "disk_full"
    retry_after = 60


class BlobsUnavailable(Busy):
    """The scan store (an object store) cannot be reached: 503 with Retry-After; the last
    chunk is not kept, so it is sent again."""

    code = "unavailable"
    retry_after = 10


class BlobRefused(ProtocolError):
    """A scan chunk or request refused (``code`` one of the blob codes of ``HTTP_STATUS``)."""

    def __init__(self, code: str, message: str, *, offset: int = 0):
        super().__init__(message, code=code)
        self.offset = offset


HTTP_STATUS = {
    "bad_encoding": 400,
    "bad_entry": 400,
    "bad_signature": 400,
    "bad_chain": 409,
    "fork": 409,
    "device": 403,
    "role_change": 409,
    "role_not_confirmed": 409,
    "too_large": 413,
    "quota": 429,  # hub.protocol.quota: a quota on what devices nobody approved make it keep
    "not_found": 404,
    "unauthorized": 401,
    "admin_local_only": 403,  # an admin action from somewhere other than the hub machine
    "not_resolvable": 409,  # the console: a conflict that is not (or no longer) one
    "protocol_error": 400,
    "unavailable": 503,
    "busy": 503,
    "disk_full": 503,
    "not_named": 409,  # a scan no entry held names: send the entry first
    "offset_mismatch": 409,  # an upload chunk not at the receiver's offset: ask it again
    "blob_too_large": 413,
    "not_an_image": 415,
    "empty": 415,
    "incomplete": 422,  # a JPEG/PNG/PDF cut short
    "hash_mismatch": 422,  # the bytes do not hash to the name they were sent under
    "bad_range": 400,  # an upload chunk's Content-Range missing, malformed or not its size
    "range_not_satisfiable": 416,  # a Range outside the scan, or more than one range
    "bad_http": 400,  # made by server.HubRequestHandler for aiohttp's parser refusals
    "internal_error": 500,  # a fault in the hub, never a client's doing
}
