"""Hostile and malformed input against one running hub: every endpoint, one class per row.

Each class is sent to a real ``c1hub serve`` on 127.0.0.1. The hub must refuse it with the
documented status and a stable code from docs/protocol.md ("Errors"), in the documented body
(JSON or msgpack, never text/plain), or, where the contract is a per-record answer inside a
200 (a push), refuse that record with its code. Then it must still answer a hello, and what
it stores must not have changed: stored counters, devices, and the heads of the origins it
holds (``wire.snapshot``).

Records, bodies, enrollment requests and endorsements are built with ``hub.protocol`` (see
``forge.py``): validly signed where the class needs a record that is wrong in one way only.

Rows that fail on today's code carry a strict xfail naming their finding in issue 8 (and
CONTRACT.md names what the fix must answer); remove the mark with the fix.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest

from hub.protocol import codec, enroll, entry, receipt, record
from hub.protocol.identity import Identity, fingerprint
from tests.helpers import ENTERED_AT
from tests.integration.procs import C1HUB, HubProc, Procs, run
from tests.security import forge
from tests.security.forge import DROP, Log
from tests.security.wire import MSGPACK, Reply, call, exchange, hello, push, request_bytes, snapshot


@dataclass
class Target:
    """The hub under attack and the origins it already holds."""

    hub: HubProc
    public: bytes
    token: str
    held: Log  # a pending laptop: seq 1..3 held
    revoked: Log  # approved, then revoked after seq 2
    forked: Log  # signed two different seq 1

    @property
    def port(self) -> int:
        return self.hub.port

    @property
    def url(self) -> str:
        return self.hub.url

    @property
    def origins(self) -> list[bytes]:
        return [self.held.public, self.revoked.public, self.forked.public]


def _pushed(port: int, raws: list[bytes]) -> dict[str, Any]:
    r = push(port, raws)
    assert r.status == 200, r
    out: dict[str, Any] = r.decoded()
    return out


@pytest.fixture(scope="module")
def target(module_procs: Procs) -> Target:
    hub = module_procs.hub("hub").start()
    public = hello(hub.url)["public"]
    token = (hub.data / "admin.token").read_text().strip()

    held = Log(1)
    assert _pushed(hub.port, held.extend(3))["accepted"] == 3

    revoked = Log(2)
    assert _pushed(hub.port, revoked.extend(2))["accepted"] == 2
    run(C1HUB, "approve", "--data", hub.data, fingerprint(revoked.public))
    run(C1HUB, "revoke", "--data", hub.data, fingerprint(revoked.public))

    forked = Log(3)
    assert _pushed(hub.port, forked.extend(1))["accepted"] == 1
    other = forge.signed(
        forked.ident, 1, record.GENESIS, entry.encode_body(forge.form(3_999_999), 1)
    )
    assert len(_pushed(hub.port, [other])["forks"]) == 1
    return Target(hub, public, token, held, revoked, forked)


# -- how a class is sent -------------------------------------------------------------------

Send = Callable[[Target], Reply]


def raw(data: bytes | Callable[[Target], bytes], **kw: Any) -> Send:
    """Bytes straight onto a fresh connection."""
    return lambda t: exchange(t.port, data(t) if callable(data) else data, **kw)


def post(path: str, body: bytes | Callable[[Target], bytes], ctype: str | None = MSGPACK,
         **headers: str) -> Send:  # fmt: skip
    def send(t: Target) -> Reply:
        h = dict(headers)
        if ctype is not None:
            h["Content-Type"] = ctype
        return call(t.port, "POST", path, body(t) if callable(body) else body, h)

    return send


def get(path: str | Callable[[Target], str]) -> Send:
    return lambda t: call(t.port, "GET", path(t) if callable(path) else path)


def records(make: Callable[[Target], list[bytes]]) -> Send:
    """A push of the records ``make`` builds for this target."""
    return lambda t: push(t.port, make(t))


def one(make: Callable[[Target], bytes]) -> Send:
    return records(lambda t: [make(t)])


def envelope(obj: Any) -> Send:
    """A push whose envelope is ``obj`` (packed as plain msgpack, any types)."""
    data = msgpack.packb(obj, use_bin_type=True)
    return post("/v1/push", data)


def next_body(make: Callable[[], bytes]) -> Send:
    """The held laptop's next record, validly signed, carrying the body ``make`` builds: the
    body is the only thing wrong."""
    return one(lambda t: t.held.next_with(make()))


def loose_body(**changes: Any) -> bytes:
    """A body packed with plain msgpack (so floats, nil and booleans can be put in it), keys
    in canonical order."""
    b = {**forge.form(), "entered_at": ENTERED_AT, **changes}
    return msgpack.packb(dict(sorted(b.items())), use_bin_type=True)


def admin(
    action: str, device: str | Callable[[Target], str], auth: Callable[[Target], str] | None
) -> Send:
    def send(t: Target) -> Reply:
        dev = device(t) if callable(device) else device
        h = {"Accept": "application/json"}
        if auth is not None:
            h["Authorization"] = auth(t)
        return call(t.port, "POST", f"/v1/devices/{dev}/{action}", b"", h)

    return send


def enroll_of(make: Callable[[Target], bytes], ctype: str = MSGPACK) -> Send:
    return post("/v1/enroll", make, ctype)


def _new_device() -> Identity:
    return Identity.generate()


def _req(t: Target, **changes: Any) -> bytes:
    """An enrollment request from a new device, payload changed by ``changes``."""
    d = _new_device()
    return forge.enroll_request(d, forge.enroll_payload(d.public, t.public, **changes))


def _noncanonical_seq_record(t: Target) -> bytes:
    seq, prev = t.held.head
    body = t.held.next_body()
    sig = t.held.ident.sign(record.DOMAIN, forge.unsigned_part(t.held.public, seq + 1, prev, body))
    return (b"\x96" + codec.pack(1) + codec.pack(t.held.public) + b"\xce"
            + (seq + 1).to_bytes(4, "big") + codec.pack(prev) + codec.pack(body)
            + codec.pack(sig))  # fmt: skip


_L = 2**252 + 27742317777372353535851937790883648493  # the order of Ed25519's base point


def _malleable_s(t: Target) -> bytes:
    """The held laptop's next record with its signature's S replaced by S + L: the same
    signature to a lax verifier, refused by a strict one (libsodium)."""
    good = record.decode(t.held.next_with(t.held.next_body()))
    s = int.from_bytes(good.sig[32:], "little") + _L
    sig = good.sig[:32] + s.to_bytes(32, "little")
    return forge.assemble(1, good.origin, good.seq, good.prev, good.body, sig)


def _flip(data: bytes, at: int) -> bytes:
    """``data`` with one bit changed in byte ``at`` (negative counts from the end)."""
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)


def _chunked(payload: bytes, size: int = 1 << 20) -> bytes:
    out = b""
    for i in range(0, len(payload), size):
        part = payload[i : i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


# -- what must come back -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    send: Send
    expect: tuple[Any, ...]  # ("http", status, code) | ("record", code) | ("duplicate", n)
    finding: int | None = None
    why: str = ""


def http(status: int, code: str) -> tuple[Any, ...]:
    return ("http", status, code)


def rec(code: str) -> tuple[Any, ...]:
    return ("record", code)


BAD_ENC = http(400, "bad_encoding")
BAD_ENTRY = http(400, "bad_entry")
BAD_SIG = http(400, "bad_signature")
BAD_HTTP = http(400, "bad_http")

P = "/v1/push"
A = "application/msgpack"
GOOD_PUSH = codec.pack({"records": []})


def endorsing(make: Callable[[Target], bytes]) -> Send:
    """A push carrying no records and one endorsement built by ``make``."""
    return post(P, lambda t: codec.pack({"records": [], "endorsements": [make(t)]}))


def shaped(*items: Any) -> Send:
    """A push of one record-shaped array; ``HELD`` stands for the held laptop's key."""
    return one(lambda t: forge.assemble(*(t.held.public if i is HELD else i for i in items)))


HELD = object()
Z32, Z64 = bytes(32), bytes(64)


def nxt(t: Target) -> bytes:
    """The held laptop's next record, valid in every way."""
    return t.held.next_with(t.held.next_body())


def stranger() -> bytes:
    return os.urandom(32)


def raw_post(headers: bytes, body: bytes = b"") -> Send:
    return raw(b"POST /v1/push HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body)


def raw_get(extra: bytes = b"", line: bytes = b"GET /v1/hello HTTP/1.1") -> Send:
    return raw(line + b"\r\nHost: x\r\n" + extra + b"\r\n")


def _auth_not_utf8(t: Target) -> bytes:
    req = request_bytes("POST", f"/v1/devices/{fingerprint(t.held.public)}/approve", b"")
    return req.replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer \xff\xfe\r\n\r\n")


def bearer(t: Target) -> str:
    return "Bearer " + t.token


def held_id(t: Target) -> str:
    return fingerprint(t.held.public)


CHUNKED = {"Content-Type": A, "Transfer-Encoding": "chunked"}
EXPECT = {"Content-Type": A, "Expect": "100-continue", "Content-Length": "1000000000"}
TE = b"Transfer-Encoding: chunked\r\nContent-Type: application/msgpack\r\n"
NOT_ALLOWED = http(405, "method_not_allowed")
NOT_FOUND = http(404, "not_found")
UNAUTHORIZED = http(401, "unauthorized")
TOO_LARGE = http(413, "too_large")
GZ = {"Content-Encoding": "gzip"}

# fmt: off
CASES: list[Case] = [
    # -- the push envelope ----------------------------------------------------------------
    Case("push-empty-body", post(P, b""), BAD_ENC),
    Case("push-not-msgpack", post(P, b"\xc1\xc1\xc1"), BAD_ENC),
    Case("push-truncated", post(P, codec.pack({"records": [b"x" * 40]})[:20]), BAD_ENC),
    Case("push-trailing-bytes", post(P, GOOD_PUSH + b"\x00"), BAD_ENC),
    Case("push-top-level-array", envelope([[]]), BAD_ENC),
    Case("push-top-level-int", envelope(7), BAD_ENC),
    Case("push-top-level-nil", envelope(None), BAD_ENC),
    Case("push-no-records-key", envelope({"recs": []}), BAD_ENC),
    Case("push-records-int", envelope({"records": 5}), BAD_ENC),
    Case("push-records-map", envelope({"records": {"a": b"x"}}), BAD_ENC),
    Case("push-records-nil", envelope({"records": None}), BAD_ENC),
    Case("push-records-float", envelope({"records": 1.5}), BAD_ENC),
    Case("push-record-is-int", envelope({"records": [1]}), BAD_ENC),
    Case("push-record-is-str", envelope({"records": ["not bytes"]}), BAD_ENC),
    Case("push-record-is-nil", envelope({"records": [None]}), BAD_ENC),
    Case("push-record-is-list", envelope({"records": [[1, 2]]}), BAD_ENC),
    Case("push-endorsements-int", envelope({"records": [], "endorsements": 3}), BAD_ENC),
    Case("push-endorsement-is-str", envelope({"records": [], "endorsements": ["x"]}), BAD_ENC),
    Case("push-int-map-key", post(P, msgpack.packb({1: []})), BAD_ENC),
    Case("push-ext-type", envelope({"records": msgpack.ExtType(5, b"xx")}), BAD_ENC),
    Case("push-invalid-utf8-key", post(P, b"\x81\xa2\xff\xfe\x90"), BAD_ENC),
    Case("push-huge-array-header", post(P, b"\x81\xa7records\xdd\xff\xff\xff\xff"), BAD_ENC),
    Case("push-huge-bin-header", post(P, b"\x81\xa7records\x91\xc6\xff\xff\xff\xff"), BAD_ENC),
    Case("push-huge-map-header", post(P, b"\xdf\xff\xff\xff\xff"), BAD_ENC),
    Case("push-deep-nesting", post(P, b"\x91" * 100_000 + b"\x90"), BAD_ENC),
    Case("push-content-type-text", post(P, GOOD_PUSH, "text/plain"), BAD_ENC),
    Case("push-content-type-missing", post(P, GOOD_PUSH, None), BAD_ENC),
    Case("push-content-type-json", post(P, b'{"records": []}', "application/json"), BAD_ENC),
    Case("push-form-urlencoded", post(P, b"records=1", "application/x-www-form-urlencoded"),
         BAD_ENC),
    Case("push-over-max-batch", records(lambda t: [b""] * 5001), TOO_LARGE),
    Case("push-over-max-body", post(P, b"\x00" * (16 * 1024 * 1024 + 1)), TOO_LARGE),
    Case("push-chunked-over-max-body",
         raw(request_bytes("POST", P, _chunked(b"\x00" * (17 << 20)), CHUNKED,
                           content_length=False), timeout=60), TOO_LARGE),
    Case("push-gzip-bomb", post(P, _gzip_bomb(), A, **GZ), TOO_LARGE),
    Case("push-gzip-invalid", post(P, b"not gzip at all", A, **GZ), BAD_ENC),
    Case("push-deflate-invalid", post(P, b"not deflate", A, **{"Content-Encoding": "deflate"}),
         BAD_ENC),
    Case("push-expect-100-huge", raw(request_bytes("POST", P, None, EXPECT)), TOO_LARGE),
    # -- endorsements in a push -------------------------------------------------------------
    Case("endorsement-garbage", endorsing(lambda t: b"\xc1junk"), BAD_ENC),
    Case("endorsement-not-a-pair", endorsing(lambda t: codec.pack([b"x"])), BAD_ENC),
    Case("endorsement-bad-signature",
         endorsing(lambda t: _flip(forge.endorsement(Identity.generate(), stranger()), -3)),
         BAD_SIG),
    Case("endorsement-enroll-domain",
         endorsing(lambda t: forge.endorsement(Identity.generate(), stranger(),
                                               domain=enroll.ENROLL_DOMAIN)), BAD_SIG),
    Case("endorsement-extra-key",
         endorsing(lambda t: forge.endorsement(Identity.generate(), stranger(), extra=1)),
         BAD_ENC),
    Case("endorsement-device-31-bytes",
         endorsing(lambda t: forge.endorsement(Identity.generate(), bytes(31))), BAD_ENC),
    Case("endorsement-role-root",
         endorsing(lambda t: forge.endorsement(Identity.generate(), stranger(), role="root")),
         BAD_ENTRY),
    Case("endorsement-name-121",
         endorsing(lambda t: forge.endorsement(Identity.generate(), stranger(), "x" * 121)),
         BAD_ENTRY),
    Case("endorsement-name-escape",
         endorsing(lambda t: forge.endorsement(Identity.generate(), stranger(), "\x1b]0;x\x07")),
         BAD_ENTRY),
    # -- record bytes (per-record refusals inside a 200) --------------------------------------
    Case("record-empty", one(lambda t: b""), rec("bad_encoding")),
    Case("record-garbage", one(lambda t: b"\xc1" * 50), rec("bad_encoding")),
    Case("record-5-items", shaped(1, HELD, 4, Z32, b"x"), rec("bad_encoding")),
    Case("record-7-items", shaped(1, HELD, 4, Z32, b"x", Z64, 0), rec("bad_encoding")),
    Case("record-version-2", shaped(2, HELD, 4, Z32, b"x", Z64), rec("bad_encoding")),
    Case("record-version-0", shaped(0, HELD, 4, Z32, b"x", Z64), rec("bad_encoding")),
    Case("record-origin-31-bytes", shaped(1, bytes(31), 4, Z32, b"x", Z64), rec("bad_encoding")),
    Case("record-origin-str", shaped(1, "k" * 32, 4, Z32, b"x", Z64), rec("bad_encoding")),
    Case("record-seq-0", shaped(1, HELD, 0, Z32, b"x", Z64), rec("bad_encoding")),
    Case("record-seq-negative", shaped(1, HELD, -4, Z32, b"x", Z64), rec("bad_encoding")),
    Case("record-seq-over-2^53", shaped(1, HELD, 2**53 + 1, Z32, b"x", Z64),
         rec("bad_encoding")),
    Case("record-seq-str", shaped(1, HELD, "4", Z32, b"x", Z64), rec("bad_encoding")),
    Case("record-prev-31-bytes", shaped(1, HELD, 4, bytes(31), b"x", Z64), rec("bad_encoding")),
    Case("record-body-str", shaped(1, HELD, 4, Z32, "body", Z64), rec("bad_encoding")),
    Case("record-sig-63-bytes", shaped(1, HELD, 4, Z32, b"x", bytes(63)), rec("bad_encoding")),
    Case("record-is-map", one(lambda t: codec.pack({"origin": t.held.public, "seq": 4})),
         rec("bad_encoding")),
    Case("record-noncanonical-int", one(_noncanonical_seq_record), rec("bad_encoding")),
    Case("record-trailing-byte", one(lambda t: nxt(t) + b"\x00"), rec("bad_encoding")),
    Case("record-over-72KiB", shaped(1, HELD, 4, Z32, b"x" * 80_000, Z64), rec("bad_encoding")),
    Case("record-sig-flipped-bit", one(lambda t: _flip(nxt(t), -1)), rec("bad_signature")),
    Case("record-body-changed-after-signing", one(lambda t: _flip(nxt(t), 150)),
         rec("bad_signature")),
    Case("record-signed-by-another-key",
         one(lambda t: forge.sign_as_record(Identity.generate(), t.held.head[0] + 1,
                                            t.held.head[1], t.held.next_body(),
                                            origin=t.held.public)), rec("bad_signature")),
    Case("record-signature-of-another-seq",
         one(lambda t: forge.assemble(1, t.held.public, t.held.head[0] + 1, t.held.head[1],
                                      t.held.next_body(), t.held.records[0].sig)),
         rec("bad_signature")),
    Case("record-receipt-domain",
         one(lambda t: forge.sign_as_record(t.held.ident, t.held.head[0] + 1, t.held.head[1],
                                            t.held.next_body(), domain=receipt.DOMAIN)),
         rec("bad_signature")),
    Case("record-origin-zero-key",
         one(lambda t: forge.assemble(1, Z32, 1, record.GENESIS, t.held.next_body(),
                                      os.urandom(64))), rec("bad_signature")),
    Case("record-origin-small-order-point",
         one(lambda t: forge.assemble(1, b"\x01" + bytes(31), 1, record.GENESIS,
                                      t.held.next_body(), Z64)), rec("bad_signature")),
    Case("record-signature-s-plus-l", one(_malleable_s), rec("bad_signature")),
    # -- the entry body (validly signed as the held laptop's next record) ---------------------
    Case("body-not-msgpack", next_body(lambda: b"\xc1\xc1"), rec("bad_encoding")),
    Case("body-keys-unsorted",
         next_body(lambda: msgpack.packb(dict(reversed(list(
             {**forge.form(), "entered_at": ENTERED_AT}.items()))), use_bin_type=True)),
         rec("bad_encoding")),
    Case("body-not-normalised", next_body(lambda: forge.body(note=DROP)), rec("bad_encoding")),
    Case("body-over-64KiB", next_body(lambda: forge.body(zz="x" * 70_000)), rec("bad_encoding")),
    Case("body-trailing-bytes", next_body(lambda: forge.body() + b"\x00"), rec("bad_encoding")),
    Case("body-empty-map", next_body(lambda: codec.pack({})), rec("bad_entry")),
    Case("body-is-array", next_body(lambda: codec.pack([1, 2])), rec("bad_entry")),
    Case("body-missing-tps", next_body(lambda: forge.body(tps=DROP)), rec("bad_entry")),
    Case("body-tps-12-digits", next_body(lambda: forge.body(tps="317101100100")),
         rec("bad_entry")),
    Case("body-tps-letters", next_body(lambda: forge.body(tps="31710110010AB")),
         rec("bad_entry")),
    Case("body-tps-int", next_body(lambda: forge.body(tps=3171011001001)), rec("bad_entry")),
    Case("body-unknown-form", next_body(lambda: forge.body(form="PILKADA")), rec("bad_entry")),
    Case("body-election-uppercase", next_body(lambda: forge.body(election="PEMILU-2024")),
         rec("bad_entry")),
    Case("body-cell-1000", next_body(lambda: forge.body(sah=1000)), rec("bad_entry")),
    Case("body-cell-negative", next_body(lambda: forge.body(sah=-1)), rec("bad_entry")),
    Case("body-cell-str", next_body(lambda: forge.body(sah="12")), rec("bad_entry")),
    Case("body-cell-float", next_body(lambda: loose_body(sah=12.0)), rec("bad_entry")),
    Case("body-cell-bool", next_body(lambda: loose_body(sah=True)), rec("bad_entry")),
    Case("body-cell-2^63", next_body(lambda: forge.body(sah=2**63)), rec("bad_entry")),
    Case("body-lpj-missing-j", next_body(lambda: forge.body(pemilih_dpt={"l": 1, "p": 1})),
         rec("bad_entry")),
    Case("body-lpj-extra-key",
         next_body(lambda: forge.body(pemilih_dpt={"j": 2, "l": 1, "p": 1, "x": 0})),
         rec("bad_entry")),
    Case("body-surat-suara-extra-key",
         next_body(lambda: forge.body(surat_suara={"digunakan": 1, "diterima": 1, "extra": 0,
                                                   "rusak": 0, "sisa": 0})), rec("bad_entry")),
    Case("body-unknown-field", next_body(lambda: forge.body(zz="x")), rec("bad_entry")),
    Case("body-operator-escape", next_body(lambda: forge.body(operator="Op\x1b[2J")),
         rec("bad_entry")),
    Case("body-operator-blank", next_body(lambda: forge.body(operator="   ")), rec("bad_entry")),
    Case("body-operator-121-chars", next_body(lambda: forge.body(operator="x" * 121)),
         rec("bad_entry")),
    Case("body-operator-nil", next_body(lambda: loose_body(operator=None)), rec("bad_entry")),
    Case("body-note-2001-chars", next_body(lambda: forge.body(note="x" * 2001)),
         rec("bad_entry")),
    Case("body-note-nul", next_body(lambda: forge.body(note="a\x00b")), rec("bad_entry")),
    Case("body-201-candidates",
         next_body(lambda: forge.body(suara={str(i): 0 for i in range(1, 202)})),
         rec("bad_entry")),
    Case("body-candidate-leading-zero", next_body(lambda: forge.body(suara={"01": 5})),
         rec("bad_entry")),
    Case("body-no-candidates", next_body(lambda: forge.body(suara={})), rec("bad_entry")),
    Case("body-ppwp-with-partai",
         next_body(lambda: forge.body(partai={"1": {"caleg": {}, "jumlah": 0, "partai": 0}})),
         rec("bad_entry")),
    Case("body-dpr-without-partai",
         next_body(lambda: forge.body(forge.form(kind="DPR"), partai=DROP)), rec("bad_entry")),
    Case("body-scan-not-a-hash", next_body(lambda: forge.body(scans=["zz"])), rec("bad_entry")),
    Case("body-65-scans", next_body(lambda: forge.body(scans=["a" * 64] * 65)),
         rec("bad_entry")),
    Case("body-supersedes-not-a-hash", next_body(lambda: forge.body(supersedes="abc")),
         rec("bad_entry")),
    Case("body-entered-at-missing", next_body(lambda: forge.body(entered_at=DROP)),
         rec("bad_entry")),
    Case("body-entered-at-str", next_body(lambda: forge.body(entered_at="1707900000")),
         rec("bad_entry")),
    Case("body-entered-at-2^40", next_body(lambda: forge.body(entered_at=2**40)),
         rec("bad_entry")),
    # -- the chain --------------------------------------------------------------------------
    Case("chain-gap",
         one(lambda t: forge.signed(t.held.ident, t.held.head[0] + 3, stranger(),
                                    t.held.next_body())), rec("out_of_order")),
    Case("chain-seq-2^53",
         one(lambda t: forge.signed(t.held.ident, 2**53, stranger(), t.held.next_body())),
         rec("out_of_order")),
    Case("chain-replay-one", one(lambda t: t.held.records[1].raw), ("duplicate", 1)),
    Case("chain-replay-whole-log", records(lambda t: [r.raw for r in t.held.records]),
         ("duplicate", 3)),
    Case("chain-after-revocation", one(lambda t: t.revoked.next_with(t.revoked.next_body())),
         rec("device_revoked")),
    Case("chain-forked-origin", one(lambda t: t.forked.next_with(t.forked.next_body())),
         rec("origin_forked")),
    Case("chain-unknown-origin-gap",
         one(lambda t: forge.signed(Identity.generate(), 2, stranger(), t.held.next_body())),
         rec("out_of_order")),
    # -- enrollment -------------------------------------------------------------------------
    Case("enroll-empty", enroll_of(lambda t: b""), BAD_ENC),
    Case("enroll-garbage", enroll_of(lambda t: b"\xc1" * 10), BAD_ENC),
    Case("enroll-three-items", enroll_of(lambda t: codec.pack([b"a", b"b", b"c"])), BAD_ENC),
    Case("enroll-payload-not-a-map",
         enroll_of(lambda t: forge.enroll_request(Identity.generate(), codec.pack([1, 2]))),
         BAD_ENC),
    Case("enroll-payload-not-canonical",
         enroll_of(lambda t: forge.enroll_request(Identity.generate(), msgpack.packb(
             {"role": "laptop", "name": "x", "hub": t.public, "device": Z32, "at": 1}))),
         BAD_ENC),
    Case("enroll-sig-not-bytes", enroll_of(lambda t: codec.pack([codec.pack({}), "sig"])),
         BAD_ENC),
    Case("enroll-missing-role", enroll_of(lambda t: _req(t, role=DROP)), BAD_ENC),
    Case("enroll-extra-key", enroll_of(lambda t: _req(t, admin="yes")), BAD_ENC),
    Case("enroll-device-31-bytes", enroll_of(lambda t: _req(t, device=bytes(31))), BAD_ENC),
    Case("enroll-at-str", enroll_of(lambda t: _req(t, at="now")), BAD_ENC),
    Case("enroll-over-4096-bytes", enroll_of(lambda t: _req(t, name="x" * 5000)), BAD_ENC),
    Case("enroll-other-hub", enroll_of(lambda t: _req(t, hub=stranger())), BAD_ENTRY),
    Case("enroll-name-121", enroll_of(lambda t: _req(t, name="x" * 121)), BAD_ENTRY),
    Case("enroll-name-bytes", enroll_of(lambda t: _req(t, name=b"Meja 7")), BAD_ENTRY),
    Case("enroll-role-root", enroll_of(lambda t: _req(t, role="root")), BAD_ENTRY),
    Case("enroll-role-admin", enroll_of(lambda t: _req(t, role="admin")), BAD_ENTRY),
    Case("enroll-bad-signature",
         enroll_of(lambda t: _flip(forge.enrollment(Identity.generate(), t.public), -2)),
         BAD_SIG),
    Case("enroll-signed-by-another-key", enroll_of(lambda t: _signed_by_other(t)), BAD_SIG),
    Case("enroll-endorse-domain", enroll_of(lambda t: _endorse_domain_request(t)), BAD_SIG),
    Case("enroll-content-type-text",
         enroll_of(lambda t: forge.enrollment(Identity.generate(), t.public), "text/plain"),
         BAD_ENC),
    Case("enroll-name-line-feed", enroll_of(lambda t: _req(t, name="Meja 7\nINFO approved")),
         BAD_ENTRY),
    Case("enroll-name-carriage-return", enroll_of(lambda t: _req(t, name="\rMeja 1")),
         BAD_ENTRY),
    Case("enroll-name-escape", enroll_of(lambda t: _req(t, name="\x1b[2J\x1b[HMeja 1")),
         BAD_ENTRY),
    Case("enroll-name-bidi-override", enroll_of(lambda t: _req(t, name="Meja \u202e1 ajeM")),
         BAD_ENTRY),
    Case("enroll-pending-laptop-asks-role-hub",
         enroll_of(lambda t: forge.enrollment(t.held.ident, t.public, "Meja 7", "hub")),
         http(409, "role_change")),
    # -- heads and hello --------------------------------------------------------------------
    Case("head-origin-63-hex", get("/v1/heads/" + "a" * 63), BAD_ENC),
    Case("head-origin-66-hex", get("/v1/heads/" + "a" * 66), BAD_ENC),
    Case("head-origin-not-hex", get("/v1/heads/" + "z" * 64), BAD_ENC),
    Case("head-origin-node-id", get(lambda t: "/v1/heads/" + held_id(t)), BAD_ENC),
    Case("heads-not-a-map", post("/v1/heads", codec.pack([Z32])), BAD_ENC),
    Case("heads-no-origins", post("/v1/heads", codec.pack({"origin": []})), BAD_ENC),
    Case("heads-origin-str", post("/v1/heads", codec.pack({"origins": ["a" * 32]})), BAD_ENC),
    Case("heads-origin-31-bytes", post("/v1/heads", codec.pack({"origins": [bytes(31)]})),
         BAD_ENC),
    Case("heads-origins-map", post("/v1/heads", codec.pack({"origins": {"a": Z32}})), BAD_ENC),
    Case("heads-10001-origins",
         post("/v1/heads", codec.pack({"origins": [stranger() for _ in range(10_001)]})),
         TOO_LARGE),
    Case("heads-content-type-json", post("/v1/heads", b'{"origins": []}', "application/json"),
         BAD_ENC),
    Case("hello-nonce-not-hex", get("/v1/hello?nonce=zz"), BAD_ENC),
    Case("hello-nonce-15-bytes", get("/v1/hello?nonce=" + "ab" * 15), BAD_ENTRY),
    Case("hello-nonce-2000-bytes", get("/v1/hello?nonce=" + "ab" * 2000), BAD_ENTRY),
    Case("forks-limit-not-a-number", get("/v1/forks?limit=abc"), BAD_ENC),
    # -- methods and paths ------------------------------------------------------------------
    Case("get-push", get(P), NOT_ALLOWED),
    Case("put-push", lambda t: call(t.port, "PUT", P, GOOD_PUSH, {"Content-Type": A}),
         NOT_ALLOWED),
    Case("delete-enroll", lambda t: call(t.port, "DELETE", "/v1/enroll"), NOT_ALLOWED),
    Case("patch-heads", lambda t: call(t.port, "PATCH", "/v1/heads", b"", {"Content-Type": A}),
         NOT_ALLOWED),
    Case("options-push", lambda t: call(t.port, "OPTIONS", P), NOT_ALLOWED),
    Case("trace-hello", lambda t: call(t.port, "TRACE", "/v1/hello"), NOT_ALLOWED),
    Case("post-status", post("/v1/status", b"{}", "application/json"), NOT_ALLOWED),
    Case("get-approve", get("/v1/devices/AAAA-AAAA-AAAA/approve"), NOT_ALLOWED),
    Case("unknown-path", get("/v1/nope"), NOT_FOUND),
    Case("unknown-version", get("/v2/hello"), NOT_FOUND),
    Case("unknown-device-action", post("/v1/devices/AAAA-AAAA-AAAA/frobnicate", b"", None),
         NOT_FOUND),
    Case("path-traversal", get("/v1/../../etc/passwd"), NOT_FOUND),
    Case("path-traversal-encoded", get("/v1/%2e%2e/%2e%2e/hub.db"), NOT_FOUND),
    Case("path-data-file", get("/admin.token"), NOT_FOUND),
    Case("path-8000-chars", get("/v1/" + "a" * 8000), NOT_FOUND),
    # -- admin ------------------------------------------------------------------------------
    Case("approve-no-token", admin("approve", held_id, None), UNAUTHORIZED),
    Case("approve-wrong-token", admin("approve", held_id, lambda t: "Bearer nope"),
         UNAUTHORIZED),
    Case("approve-token-one-char-short",
         admin("approve", held_id, lambda t: bearer(t)[:-1]), UNAUTHORIZED),
    Case("approve-token-without-scheme", admin("approve", held_id, lambda t: t.token),
         UNAUTHORIZED),
    Case("approve-basic-auth",
         admin("approve", held_id, lambda t: "Basic YWRtaW46YWRtaW4="), UNAUTHORIZED),
    Case("revoke-no-token", admin("revoke", held_id, None), UNAUTHORIZED),
    Case("approve-unknown-device", admin("approve", "AAAA-AAAA-AAAA", bearer), NOT_FOUND),
    Case("revoke-unknown-device", admin("revoke", "0" * 64, bearer), NOT_FOUND),
    Case("approve-forked-device",
         admin("approve", lambda t: fingerprint(t.forked.public), bearer), http(403, "device")),
    Case("approve-auth-not-utf8", raw(_auth_not_utf8), UNAUTHORIZED),
    # -- raw HTTP that aiohttp's own parser refuses -----------------------------------------
    Case("raw-garbage-request-line", raw(b"HELLO\r\n\r\n"), BAD_HTTP),
    Case("raw-http2-preface", raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), BAD_HTTP),
    Case("raw-method-with-at-sign", raw_get(line=b"G@T /v1/hello HTTP/1.1"), BAD_HTTP),
    Case("raw-unknown-method", raw_get(line=b"FOO /v1/hello HTTP/1.1"), BAD_HTTP),
    Case("raw-http-version-9.9", raw_get(line=b"GET /v1/hello HTTP/9.9"), BAD_HTTP),
    Case("raw-bare-lf-line-ends", raw(b"GET /v1/hello HTTP/1.1\nHost: x\n\n"), BAD_HTTP),
    Case("raw-asterisk-target", raw_get(line=b"GET * HTTP/1.1"), BAD_HTTP),
    Case("raw-non-utf8-path", raw_get(line=b"GET /v1/\xff\xfe HTTP/1.1"), BAD_HTTP),
    Case("raw-request-line-9000", raw_get(line=b"GET /" + b"a" * 9000 + b" HTTP/1.1"),
         BAD_HTTP),
    Case("raw-header-without-colon", raw_get(b"Oops\r\n"), BAD_HTTP),
    Case("raw-space-before-colon", raw_get(b"X-A : b\r\n"), BAD_HTTP),
    Case("raw-header-9000", raw_get(b"X: " + b"a" * 9000 + b"\r\n"), BAD_HTTP),
    Case("raw-200-headers", raw_get(b"".join(b"X-%d: y\r\n" % i for i in range(200))),
         BAD_HTTP),
    Case("raw-nul-in-header", raw_get(b"X: a\x00b\r\n"), BAD_HTTP),
    Case("raw-cr-in-header", raw_get(b"X: a\rb\r\n"), BAD_HTTP),
    Case("raw-obs-fold", raw_get(b"X: a\r\n b\r\n"), BAD_HTTP),
    Case("raw-content-length-negative", raw_post(b"Content-Length: -1\r\n"), BAD_HTTP),
    Case("raw-content-length-not-a-number", raw_post(b"Content-Length: 1e3\r\n"), BAD_HTTP),
    Case("raw-content-length-twice",
         raw_post(b"Content-Length: 1\r\nContent-Length: 2\r\n", b"ab"), BAD_HTTP),
    Case("raw-content-length-and-chunked",
         raw_post(b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
         BAD_HTTP),
    Case("raw-chunk-size-not-hex", raw_post(TE, b"zz\r\nab\r\n0\r\n\r\n"), BAD_HTTP),
    Case("raw-chunk-size-overflow", raw_post(TE, b"f" * 20 + b"\r\nab\r\n0\r\n\r\n"), BAD_HTTP),
]
# fmt: on


def _signed_by_other(t: Target) -> bytes:
    d = Identity.generate()
    return forge.enroll_request(d, forge.enroll_payload(d.public, t.public), signer=_new_device())


def _endorse_domain_request(t: Target) -> bytes:
    d = Identity.generate()
    payload = forge.enroll_payload(d.public, t.public)
    return forge.enroll_request(d, payload, domain=enroll.ENDORSE_DOMAIN)


def _params() -> list[Any]:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "class ids must be unique"
    out = []
    for c in CASES:
        marks = []
        if c.finding is not None:
            marks.append(pytest.mark.xfail(strict=True, reason=f"finding {c.finding}: {c.why}"))
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


def check(reply: Reply, expect: tuple[Any, ...]) -> None:
    assert reply.status is not None, f"the hub closed the connection without a reply: {reply.raw!r}"
    assert reply.status < 500, f"server error: {reply}"
    kind = expect[0]
    if kind == "http":
        _, status, code = expect
        assert (reply.status, reply.error["code"]) == (status, code), str(reply)
        return
    assert reply.status == 200, str(reply)
    out = reply.decoded()
    assert out["accepted"] == 0, out
    if kind == "duplicate":
        assert (out["duplicate"], out["rejected"], out["forks"]) == (expect[1], [], []), out
        return
    refused = out["rejected"] + out["forks"]
    assert len(refused) == 1 and refused[0]["decision"] == "reject", out
    assert refused[0]["code"] == expect[1], refused[0]
    assert isinstance(refused[0]["reason"], str) and refused[0]["reason"], refused[0]


def test_table_is_big_enough() -> None:
    """The issue asks for at least 100 distinct classes across every endpoint."""
    assert len(CASES) >= 100, len(CASES)
    prefixes = {c.id.split("-")[0] for c in CASES}
    want = {"push", "endorsement", "record", "body", "chain", "enroll", "head", "heads",
            "hello", "raw", "approve"}  # fmt: skip
    assert want <= prefixes, want - prefixes


@pytest.mark.parametrize("case", _params())
def test_hostile_input_is_refused_and_changes_nothing(target: Target, case: Case) -> None:
    before = snapshot(target.url, target.origins)
    reply = case.send(target)
    check(reply, case.expect)
    assert hello(target.url)["public"] == target.public
    assert snapshot(target.url, target.origins) == before
