"""Who may act in the console: the rule for admin actions from the browser.

An admin action (approve, revoke, resolve) is allowed only when all of these hold:

- the **peer address** the transport reports is loopback (the browser runs on the hub
  machine itself; no secret ever crosses the LAN);
- the **Host** header names a loopback name or address (``localhost``, ``127.x.x.x``,
  ``[::1]``): a page on another name that resolves to this machine (DNS rebinding) is refused;
- a **CSRF token** handed out in the page (``token.issue``) comes back with the POST and
  verifies, and the **Origin**, when the browser sends one, is the console's own
  (``http://<Host>``): a cross-site form or fetch from another page in the coordinator's own
  browser cannot act.

Everything else sees the console read-only and is told why. ``local_view`` is the first two
checks (what a GET needs to show the buttons); ``check_admin`` is all of them. Both are small
pure functions over plain values so that the HTTP API's rule (loopback peers only) can be
merged with this one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from hub.access import is_loopback, loopback_host


def host_is_loopback(host: str | None) -> bool:
    """The Host header names this machine without DNS (``hub.access.loopback_host``)."""
    return host is not None and loopback_host(host)


def local_view(peer: str | None, host: str | None) -> str | None:
    """None when the page may show admin controls; else the reason it is read-only."""
    if not is_loopback(peer):
        return "not_hub_machine"
    if not host_is_loopback(host):
        return "not_loopback_host"
    return None


class Tokens:
    """Per-page CSRF tokens: ``nonce.mac`` with a secret held only in this process, so any
    page this console served can act and nothing else can; a restart voids old pages."""

    def __init__(self, secret: bytes | None = None):
        self._secret = secret or secrets.token_bytes(32)

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._mac(nonce)}"

    def valid(self, token: str | None) -> bool:
        if not token or token.count(".") != 1:
            return False
        nonce, mac = token.split(".")
        return hmac.compare_digest(mac.encode(), self._mac(nonce).encode())

    def _mac(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]


def check_admin(
    peer: str | None, host: str | None, origin: str | None, token: str | None, tokens: Tokens
) -> str | None:
    """None when an admin POST may proceed; else a stable reason code (``not_hub_machine``,
    ``not_loopback_host``, ``bad_origin``, ``bad_token``)."""
    why = local_view(peer, host)
    if why is not None:
        return why
    if origin is not None and origin.lower() != f"http://{(host or '').lower()}":
        return "bad_origin"
    if not tokens.valid(token):
        return "bad_token"
    return None
