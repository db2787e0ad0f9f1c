"""Enrollment requests and endorsements (DESIGN §3 "Identities").

*Enrollment request* (device -> hub), proving the device holds its key::

    [payload: bin, sig: bin64]
    payload = pack({"at": int, "device": bin32, "hub": bin32, "name": str, "role": str})

signed by the device, domain ``c1hub/enroll/v1``. Naming the hub's key binds the request to
that hub. A replayed request is harmless: enrollment is idempotent.

*Endorsement* (hub -> upstream, travelling with the stream): the hub's signed statement that it
approved a device::

    [payload: bin, sig: bin64]
    payload = pack({"approved_at": int, "device": bin32, "hub": bin32, "name": str, "role": str})

signed by the hub, domain ``c1hub/endorse/v1``. The root checks root -> hub -> device: the hub's
own endorsement is issued by the root's approval of the hub, and each device's by its hub.

A ``name`` is text of at most ``MAX_NAME`` characters without a control, line-break or bidi
character (``hub.protocol.text.check_name``): opening a request or an endorsement whose name
holds one raises ``SchemaError`` (``bad_entry``, field ``name``).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import codec, text
from .errors import CodecError, SchemaError
from .identity import Identity, verify

ENROLL_DOMAIN = b"c1hub/enroll/v1"
ENDORSE_DOMAIN = b"c1hub/endorse/v1"
ROLES = ("laptop", "hub")
MAX_NAME = text.MAX_NAME


@dataclass(frozen=True, slots=True)
class EnrollRequest:
    device: bytes
    hub: bytes
    name: str
    role: str
    at: int


@dataclass(frozen=True, slots=True)
class Endorsement:
    device: bytes
    hub: bytes
    name: str
    role: str
    approved_at: int
    raw: bytes


def _split(raw: bytes) -> tuple[bytes, bytes, dict[str, object]]:
    obj = codec.unpack(raw, max_size=4096)
    if type(obj) is not list or len(obj) != 2 or type(obj[0]) is not bytes:
        raise CodecError("expected [payload, signature]")
    if type(obj[1]) is not bytes:
        raise CodecError("signature must be bytes")
    payload = codec.unpack(obj[0], max_size=4096)
    if type(payload) is not dict:
        raise CodecError("payload must be a map")
    return obj[0], obj[1], payload


def _check_common(p: dict[str, object], keys: set[str]) -> None:
    if set(p) != keys:
        raise CodecError(f"payload must have exactly {', '.join(sorted(keys))}")
    for k in ("device", "hub"):
        v = p[k]
        if type(v) is not bytes or len(v) != 32:
            raise CodecError(f"{k} must be a 32-byte public key")
    text.check_name(p["name"], max_len=MAX_NAME)
    role = p["role"]
    if role not in ROLES:
        raise SchemaError(f"role must be one of {', '.join(ROLES)}", field="role")


def make_request(device: Identity, hub_public: bytes, name: str, role: str, at: int) -> bytes:
    payload = codec.pack(
        {"at": at, "device": device.public, "hub": hub_public, "name": name, "role": role}
    )
    return codec.pack([payload, device.sign(ENROLL_DOMAIN, payload)])


def open_request(raw: bytes, hub_public: bytes) -> EnrollRequest:
    """Check an enrollment request addressed to ``hub_public``; raise ProtocolError if not."""
    payload, sig, p = _split(raw)
    _check_common(p, {"at", "device", "hub", "name", "role"})
    if type(p["at"]) is not int:
        raise CodecError("at must be unix seconds")
    if p["hub"] != hub_public:
        raise SchemaError("this enrollment request is addressed to another hub", field="hub")
    device = p["device"]
    assert type(device) is bytes
    verify(device, ENROLL_DOMAIN, payload, sig)
    return EnrollRequest(device, hub_public, str(p["name"]), str(p["role"]), int(p["at"]))


def endorse(hub: Identity, device: bytes, name: str, role: str, approved_at: int) -> bytes:
    payload = codec.pack(
        {"approved_at": approved_at, "device": device, "hub": hub.public, "name": name,
         "role": role}
    )  # fmt: skip
    return codec.pack([payload, hub.sign(ENDORSE_DOMAIN, payload)])


def open_endorsement(raw: bytes) -> Endorsement:
    """Check an endorsement's own signature (by the hub it names). Trusting that hub is the
    caller's decision."""
    payload, sig, p = _split(raw)
    _check_common(p, {"approved_at", "device", "hub", "name", "role"})
    if type(p["approved_at"]) is not int:
        raise CodecError("approved_at must be unix seconds")
    hub = p["hub"]
    assert type(hub) is bytes
    verify(hub, ENDORSE_DOMAIN, payload, sig)
    device = p["device"]
    assert type(device) is bytes
    return Endorsement(device, hub, str(p["name"]), str(p["role"]), int(p["approved_at"]), raw)


HELLO_DOMAIN = b"c1hub/hello/v1"
NONCE_LEN = 16


def prove(node: Identity, nonce: bytes) -> bytes:
    """A node's answer to a hello challenge: its signature over the caller's fresh nonce."""
    if len(nonce) != NONCE_LEN:
        raise SchemaError(f"a hello nonce is {NONCE_LEN} bytes", field="nonce")
    return node.sign(HELLO_DOMAIN, nonce)


def check_proof(public: bytes, nonce: bytes, proof: bytes) -> None:
    """Raise SignatureError unless ``public`` signed ``nonce``: the node answering really
    holds the key it claims (a copied hello cannot pass for the pinned hub)."""
    verify(public, HELLO_DOMAIN, nonce, proof)
