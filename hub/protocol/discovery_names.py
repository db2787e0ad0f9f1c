"""DNS-SD names and TXT keys shared by the hub's advertiser and the laptop's browser.

A hub advertises one service instance of type ``_c1hub._tcp.local.`` named
``c1hub <name> <node id>._c1hub._tcp.local.`` with these TXT keys:

=======  ==============================================================
``id``   node id, ``XXXX-XXXX-XXXX`` (fingerprint of ``pk``)
``pk``   Ed25519 public key, 64 lowercase hex characters
``v``    protocol version (``"1"``); other versions are ignored
``role`` ``hub`` or ``root``
``name`` the hub's display name (UTF-8, at most 63 bytes)
=======  ==============================================================

Everything here is a plain function of its arguments, so both sides (and the tests) share one
definition of what a well-formed advertisement is. Discovery is only a hint: a well-formed TXT
record proves nothing about who sent it; the caller checks the hub's key when it connects.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from . import PROTOCOL_VERSION
from .identity import PUBLIC_KEY_LEN, fingerprint

SERVICE_TYPE = "_c1hub._tcp.local."
INSTANCE_PREFIX = "c1hub"

TXT_ID = "id"
TXT_PUBLIC = "pk"
TXT_VERSION = "v"
TXT_ROLE = "role"
TXT_NAME = "name"

DISCOVERY_VERSION = str(PROTOCOL_VERSION)
ROLES = frozenset({"hub", "root"})

MAX_LABEL_BYTES = 63
"""A DNS label (the instance name) holds at most 63 bytes."""
RENAME_RESERVE = 4
"""Room left in the instance label for the ``-2``, ``-3`` zeroconf appends on a name conflict."""
MAX_NAME_BYTES = 63
"""The ``name`` TXT value is cut to this many bytes."""

_NODE_ID = re.compile(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}")
_HEX_KEY = re.compile(f"[0-9a-fA-F]{{{2 * PUBLIC_KEY_LEN}}}")
_ALL = frozenset({"all", "*"})


class TxtError(ValueError):
    """A TXT record that is not a c1hub advertisement this program understands."""


@dataclass(frozen=True, slots=True)
class HubTxt:
    """The claims in a hub's TXT record (unverified: anyone on the LAN can send them)."""

    node_id: str
    public: bytes | None
    version: str
    role: str
    name: str


def clean_name(name: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """``name`` made safe to show and to use in a DNS label.

    Control and format characters are dropped, dots (label separators) become ``-``, runs of
    whitespace become one space, and the result is cut to ``max_bytes`` of UTF-8 without
    splitting a character.
    """
    chars = []
    for ch in name:
        category = unicodedata.category(ch)
        if ch.isspace():
            chars.append(" ")
        elif category[0] == "C":
            continue
        elif ch == ".":
            chars.append("-")
        else:
            chars.append(ch)
    text = " ".join("".join(chars).split())
    raw = text.encode("utf-8")[:max_bytes]
    return raw.decode("utf-8", errors="ignore").strip()


def instance_name(name: str, node_id: str) -> str:
    """Fully qualified instance name: ``c1hub <name> <node id>._c1hub._tcp.local.``.

    The label stays within 63 bytes, with room for a conflict suffix; the node id is never cut,
    so two hubs with different keys never share a name.
    """
    fixed = len(f"{INSTANCE_PREFIX}  {node_id}".encode())
    shown = clean_name(name, MAX_LABEL_BYTES - RENAME_RESERVE - fixed)
    label = f"{INSTANCE_PREFIX} {shown} {node_id}" if shown else f"{INSTANCE_PREFIX} {node_id}"
    return f"{label}.{SERVICE_TYPE}"


def host_name(node_id: str) -> str:
    """The host name the hub's address records are published under."""
    return f"{INSTANCE_PREFIX}-{node_id.lower()}.local."


def build_txt(*, node_id: str, public: bytes, role: str, name: str) -> dict[str, str]:
    """The TXT properties a hub advertises. Raises ValueError on inconsistent input."""
    if len(public) != PUBLIC_KEY_LEN:
        raise ValueError(f"public key must be {PUBLIC_KEY_LEN} bytes, got {len(public)}")
    if fingerprint(public) != node_id:
        raise ValueError(f"node id {node_id!r} is not the fingerprint of the public key")
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
    return {
        TXT_ID: node_id,
        TXT_PUBLIC: public.hex(),
        TXT_VERSION: DISCOVERY_VERSION,
        TXT_ROLE: role,
        TXT_NAME: clean_name(name),
    }


def _ascii(props: Mapping[str, bytes | None], key: str) -> str:
    value = props.get(key)
    if value is None:
        raise TxtError(f"TXT key {key!r} is missing")
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise TxtError(f"TXT key {key!r} is not ASCII") from None


def parse_txt(properties: Mapping[bytes, bytes | None]) -> HubTxt:
    """Check a received TXT record and return its claims; raise TxtError if malformed.

    Keys are case-insensitive (RFC 6763 6.4); the first occurrence of a key wins. A record from
    another protocol version is refused before its other keys are read. ``pk`` may be absent
    (``public`` is then None); if present it must be a key whose fingerprint is ``id``.
    """
    props: dict[str, bytes | None] = {}
    for key, value in properties.items():
        try:
            text_key = key.decode("ascii").lower()
        except UnicodeDecodeError:
            continue
        props.setdefault(text_key, value)

    version = _ascii(props, TXT_VERSION)
    if version != DISCOVERY_VERSION:
        raise TxtError(f"protocol version {version!r}; this program speaks {DISCOVERY_VERSION!r}")
    node_id = _ascii(props, TXT_ID)
    if not _NODE_ID.fullmatch(node_id):
        raise TxtError(f"TXT id {node_id!r} is not a node id")
    public: bytes | None = None
    if props.get(TXT_PUBLIC) is not None:
        pk = _ascii(props, TXT_PUBLIC)
        if not _HEX_KEY.fullmatch(pk):
            raise TxtError("TXT pk is not a 64-character hex key")
        public = bytes.fromhex(pk)
        if fingerprint(public) != node_id:
            raise TxtError(f"TXT pk does not match TXT id {node_id!r}")
    role = _ascii(props, TXT_ROLE)
    if role not in ROLES:
        raise TxtError(f"TXT role {role!r} is not one of {sorted(ROLES)}")
    raw_name = props.get(TXT_NAME) or b""
    name = clean_name(raw_name.decode("utf-8", errors="replace"))
    return HubTxt(node_id=node_id, public=public, version=version, role=role, name=name)


def parse_interfaces(value: str | None) -> list[str] | None:
    """Parse an ``--mdns-interfaces`` value into the list zeroconf binds to.

    ``None``, ``""`` and ``"all"`` (or ``"*"``) mean None: every interface of the machine
    (zeroconf's ``InterfaceChoice.All``). Otherwise a comma-separated list of the machine's own
    IPv4 addresses, e.g. ``"127.0.0.1"`` (loopback only) or ``"10.0.0.5,192.168.1.20"``.
    Duplicates are dropped, order is kept. Raises ValueError naming the bad item.
    """
    if value is None or not value.strip() or value.strip().lower() in _ALL:
        return None
    result: list[str] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item.lower() in _ALL:
            raise ValueError("'all' cannot be combined with addresses")
        try:
            address = ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IPv4 address; give this machine's address "
                "(see `ip -4 addr` or `ipconfig`), or 'all'"
            ) from None
        if address.version != 4:
            raise ValueError(f"{item!r}: only IPv4 interface addresses are supported")
        if address.is_unspecified or address.is_multicast:
            raise ValueError(f"{item!r} is not an interface address; use 'all' for every one")
        if str(address) not in result:
            result.append(str(address))
    return result or None
