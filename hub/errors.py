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
    └── Busy               code busy          -> 503 (with Retry-After)
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

    def __init__(self, message: str, *, retry_after: float | None = None, too_big: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.too_big = too_big


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
    "bad_http": 400,  # made by server.HubRequestHandler for aiohttp's parser refusals
    "internal_error": 500,  # a fault in the hub, never a client's doing
}
