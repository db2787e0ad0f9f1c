"""Hostile messages built with the real wire format (``hub.protocol``): records, bodies,
enrollment requests and endorsements that are validly signed where a class needs it, and wrong
in exactly one way.

Only ``hub.protocol`` is used (the wire format core, which is the contract); nothing of the
hub's internals.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from hub.protocol import codec, enroll, entry, record
from hub.protocol.identity import Identity
from hub.shared import generator
from tests.helpers import ENTERED_AT


def tps(n: int) -> str:
    """A distinct 13-digit TPS code for every ``n`` < 20,000,000 (synthetic province 99)."""
    desa, t = divmod(n, 20)
    return f"9901{desa // 10_000 % 100:02d}{desa % 10_000:04d}{t + 1:03d}"


def form(n: int = 7, kind: str = "PPWP", **changes: Any) -> dict[str, Any]:
    """Clean, parsed (normalised) entry number ``n`` (its own TPS), with ``changes`` applied."""
    rng = random.Random(n)
    f = entry.parse(generator.make_form(rng, tps(n), kind, operator="Operator 01"))
    f.update(changes)
    return f


def body(obj: dict[str, Any] | None = None, **changes: Any) -> bytes:
    """Body bytes as a sender would make them, *without* the schema check: canonical msgpack
    of ``obj`` (a clean form by default) plus ``entered_at``, with ``changes`` applied (a value
    of ``DROP`` removes the key)."""
    b = dict(obj if obj is not None else form())
    b["entered_at"] = ENTERED_AT
    for k, v in changes.items():
        if v is DROP:
            b.pop(k, None)
        else:
            b[k] = v
    return codec.pack(b)


DROP = object()


def signed(ident: Identity, seq: int, prev: bytes, body_bytes: bytes) -> bytes:
    """A record validly signed by ``ident`` (whatever its body holds)."""
    return record.make(ident, seq, prev, body_bytes).raw


def assemble(*items: Any) -> bytes:
    """Record-shaped bytes from arbitrary items (canonical msgpack array)."""
    return codec.pack(list(items))


def unsigned_part(origin: bytes, seq: int, prev: bytes, body_bytes: bytes) -> bytes:
    return codec.pack([record.VERSION, origin, seq, prev, body_bytes])


def sign_as_record(
    ident: Identity,
    seq: int,
    prev: bytes,
    body_bytes: bytes,
    *,
    domain: bytes = record.DOMAIN,
    origin: bytes | None = None,
) -> bytes:
    """A record whose signature is ``ident``'s over the usual signed part, but in ``domain``
    and naming ``origin`` (both settable to forge a record that must not verify)."""
    o = ident.public if origin is None else origin
    sig = ident.sign(domain, unsigned_part(o, seq, prev, body_bytes))
    return assemble(record.VERSION, o, seq, prev, body_bytes, sig)


class Log:
    """An origin's append-only log, to make the next record (or a wrong one) on demand."""

    def __init__(self, seed: int, ident: Identity | None = None):
        """``seed`` (0..18) picks this log's TPS codes: logs of different seeds never share
        a TPS, so their entries never verify or conflict with each other by accident."""
        self.ident = ident or Identity.generate()
        self.records: list[record.Record] = []
        self.seed = seed

    @property
    def public(self) -> bytes:
        return self.ident.public

    @property
    def head(self) -> tuple[int, bytes]:
        if not self.records:
            return 0, record.GENESIS
        r = self.records[-1]
        return r.seq, r.hash

    def next_body(self) -> bytes:
        """A clean body for the next entry (distinct TPS per entry)."""
        return entry.encode_body(form(self.seed * 1_000_000 + len(self.records)), ENTERED_AT)

    def append(self, body_bytes: bytes | None = None) -> bytes:
        seq, prev = self.head
        r = record.make(self.ident, seq + 1, prev, body_bytes or self.next_body())
        self.records.append(r)
        return r.raw

    def extend(self, n: int) -> list[bytes]:
        return [self.append() for _ in range(n)]

    def next_with(self, body_bytes: bytes) -> bytes:
        """The next record carrying ``body_bytes``, validly signed, not added to the log."""
        seq, prev = self.head
        return signed(self.ident, seq + 1, prev, body_bytes)


# -- enrollment and endorsements ---------------------------------------------------------------


def enroll_payload(device: bytes, hub: bytes, /, **changes: Any) -> dict[str, Any]:
    """An enrollment payload (a laptop "Meja 7"), fields replaced by ``changes`` (``device``
    and ``hub`` too; ``DROP`` removes a field)."""
    p: dict[str, Any] = {"at": ENTERED_AT, "device": device, "hub": hub, "name": "Meja 7",
                         "role": "laptop"}  # fmt: skip
    for k, v in changes.items():
        if v is DROP:
            p.pop(k, None)
        else:
            p[k] = v
    return p


def enroll_request(
    ident: Identity,
    payload: dict[str, Any] | bytes,
    *,
    domain: bytes = enroll.ENROLL_DOMAIN,
    signer: Identity | None = None,
) -> bytes:
    """An enrollment request over ``payload`` (a dict, packed canonically, or raw payload
    bytes), signed by ``signer`` (default ``ident``) in ``domain``."""
    raw = payload if isinstance(payload, bytes) else codec.pack(payload)
    return codec.pack([raw, (signer or ident).sign(domain, raw)])


def enrollment(
    ident: Identity, hub_public: bytes, name: str = "Meja 7", role: str = "laptop"
) -> bytes:
    """A valid enrollment request, as a laptop (or a hub's forwarder) makes it."""
    return enroll.make_request(ident, hub_public, name, role, ENTERED_AT)


def endorsement(
    hub: Identity,
    device: bytes,
    name: str = "Meja 9",
    role: str = "laptop",
    *,
    domain: bytes = enroll.ENDORSE_DOMAIN,
    **changes: Any,
) -> bytes:
    """An endorsement signed by ``hub`` (in ``domain``), payload fields overridable."""
    p: dict[str, Any] = {"approved_at": ENTERED_AT, "device": device, "hub": hub.public,
                         "name": name, "role": role}  # fmt: skip
    p.update(changes)
    raw = codec.pack(p)
    return codec.pack([raw, hub.sign(domain, raw)])


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
