"""Hypothesis against every endpoint of one running hub: random bytes, random msgpack
structures, mutated valid records and enrollment requests, random paths, methods and headers.

Whatever comes in, the hub never answers 5xx, every error reply is the documented
``{"error": {"code", "reason"}}`` in JSON or msgpack, nothing hostile is stored, and the hub
still answers a hello afterwards (checked after each test's examples, with the same
``snapshot`` the bad-input table uses).

Bounded and reproducible: a fixed number of examples per test, no deadline, examples drawn
from a fixed seed (``derandomize``) and no example database, so CI runs the same inputs.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.protocol import codec
from hub.protocol.errors import CodecError
from hub.protocol.identity import Identity, fingerprint
from tests.integration.procs import HubProc, Procs
from tests.security import forge
from tests.security.forge import Log
from tests.security.wire import MSGPACK, Reply, call, exchange, hello, push, snapshot

EXAMPLES = 200
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Fuzzed:
    hub: HubProc
    public: bytes
    token: str
    held: Log  # a pending laptop holding seq 1..3: the state nothing may change
    valid_record: bytes  # its next record, valid in every way (mutations start from it)
    valid_enroll: bytes  # a new device's valid enrollment request (never sent as is)

    @property
    def port(self) -> int:
        return self.hub.port


@pytest.fixture(scope="module")
def fuzzed(module_procs: Procs) -> Fuzzed:
    hub = module_procs.hub("hub").start()
    public = hello(hub.url)["public"]
    held = Log(5)
    r = push(hub.port, held.extend(3))
    assert r.status == 200 and r.decoded()["accepted"] == 3, r
    token = (hub.data / "admin.token").read_text().strip()
    return Fuzzed(hub, public, token, held, held.next_with(held.next_body()),
                  forge.enrollment(Identity.generate(), public))  # fmt: skip


@pytest.fixture
def unchanged(fuzzed: Fuzzed) -> Iterator[None]:
    """After a test's examples: the hub answers a hello and stores exactly what it did."""
    before = snapshot(fuzzed.hub.url, [fuzzed.held.public])
    yield
    assert hello(fuzzed.hub.url)["public"] == fuzzed.public
    assert snapshot(fuzzed.hub.url, [fuzzed.held.public]) == before


def refused(reply: Reply, *, ok_statuses: tuple[int, ...] = ()) -> Any:
    """No 5xx, no silence; an error is the documented body. Returns the decoded body of a
    success in ``ok_statuses`` (which the caller checks further)."""
    assert reply.status is not None, f"no reply: {reply.raw[:200]!r}"
    assert reply.status < 500, str(reply)
    if reply.status in ok_statuses:
        if reply.content_type in ("application/json", MSGPACK):
            return reply.decoded()
        return None  # the dashboard (HTML) or /metrics (text)
    assert reply.status >= 400, str(reply)
    reply.error  # noqa: B018  (asserts the documented error shape)
    return None


def refused_push(reply: Reply) -> None:
    """A push is refused as a whole (4xx) or record by record: nothing accepted."""
    out = refused(reply, ok_statuses=(200,))
    if out is not None:
        assert out["accepted"] == 0 and out["duplicate"] == 0, out
        assert all(isinstance(o.get("code"), str) for o in out["rejected"] + out["forks"]), out


# -- strategies --------------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=80)
)
values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=10) | st.integers(-5, 5), inner, max_size=6)
    ),
    max_leaves=25,
)


def packed(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda v: msgpack.packb(v, use_bin_type=True))


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` changed by 1..4 edits (flip, set, insert, delete, truncate, extend)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=8))
    out = bytes(data)
    if out == original:
        out = original + b"\x00"
    return out


def record_shaped() -> st.SearchStrategy[bytes]:
    """Six-item arrays with record-like, mostly wrong, fields (canonically packed)."""
    anyint = st.integers(min_value=-(2**63), max_value=2**64 - 1)
    key = st.binary(min_size=0, max_size=40)
    return st.tuples(
        st.integers(-1, 3) | anyint,
        key,
        st.integers(-2, 2**53 + 2) | anyint,
        key,
        st.binary(max_size=300) | st.text(max_size=20),
        st.binary(min_size=60, max_size=68),
    ).map(lambda t: codec.pack(list(t)))


# -- the fuzz tests ------------------------------------------------------------------------


def _each(strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
    """Run ``check`` on ``EXAMPLES`` examples of ``strategy`` (Hypothesis inside a plain
    test, so the module's hub is a fixture and the state check runs once after them)."""

    @FUZZ
    @given(strategy)
    def run(example: Any) -> None:
        check(example)

    run()


@pytest.mark.usefixtures("unchanged")
def test_push_random_bytes(fuzzed: Fuzzed) -> None:
    _each(st.binary(max_size=4096),
          lambda b: refused_push(call(fuzzed.port, "POST", "/v1/push", b,
                                      {"Content-Type": MSGPACK})))  # fmt: skip


@pytest.mark.usefixtures("unchanged")
def test_push_random_msgpack(fuzzed: Fuzzed) -> None:
    shapes = (
        values
        | values.map(lambda v: {"records": v})
        | st.lists(values, max_size=5).map(lambda v: {"records": v})
        | st.lists(st.binary(max_size=200), max_size=5).map(lambda v: {"records": v})
        | st.tuples(st.lists(st.binary(max_size=100), max_size=3), values).map(
            lambda t: {"records": t[0], "endorsements": t[1]}
        )
    )
    _each(packed(shapes),
          lambda b: refused_push(call(fuzzed.port, "POST", "/v1/push", b,
                                      {"Content-Type": MSGPACK})))  # fmt: skip


@pytest.mark.usefixtures("unchanged")
def test_push_mutated_valid_record(fuzzed: Fuzzed) -> None:
    _each(mutated(fuzzed.valid_record), lambda r: refused_push(push(fuzzed.port, [r])))


@pytest.mark.usefixtures("unchanged")
def test_push_record_shaped_arrays(fuzzed: Fuzzed) -> None:
    _each(st.lists(record_shaped(), min_size=1, max_size=4),
          lambda rs: refused_push(push(fuzzed.port, rs)))  # fmt: skip


@pytest.mark.usefixtures("unchanged")
def test_push_mutated_envelope(fuzzed: Fuzzed) -> None:
    valid = codec.pack({"records": [fuzzed.valid_record]})
    _each(mutated(valid),
          lambda b: refused_push(call(fuzzed.port, "POST", "/v1/push", b,
                                      {"Content-Type": MSGPACK})))  # fmt: skip


@pytest.mark.usefixtures("unchanged")
def test_push_random_endorsements(fuzzed: Fuzzed) -> None:
    """Endorsements that are garbage, random pairs, or a real one mutated: refused (an
    endorsement that does not link to a known hub is ignored; none of these even verify)."""
    real = forge.endorsement(Identity.generate(), Identity.generate().public)
    one = (
        st.binary(max_size=300)
        | st.tuples(st.binary(max_size=200), st.binary(max_size=70)).map(
            lambda t: codec.pack(list(t))
        )
        | mutated(real)
    )
    _each(st.lists(one, min_size=1, max_size=3),
          lambda es: refused_push(push(fuzzed.port, [], endorsements=es)))  # fmt: skip


def _enroll(fuzzed: Fuzzed, body: bytes) -> None:
    r = call(fuzzed.port, "POST", "/v1/enroll", body, {"Content-Type": MSGPACK})
    refused(r)


@pytest.mark.usefixtures("unchanged")
def test_enroll_random_bytes_and_msgpack(fuzzed: Fuzzed) -> None:
    _each(st.binary(max_size=2048) | packed(values), lambda b: _enroll(fuzzed, b))


@pytest.mark.usefixtures("unchanged")
def test_enroll_mutated_valid_request(fuzzed: Fuzzed) -> None:
    _each(mutated(fuzzed.valid_enroll), lambda b: _enroll(fuzzed, b))


@pytest.mark.usefixtures("unchanged")
def test_enroll_random_payloads_signed(fuzzed: Fuzzed) -> None:
    """Validly signed requests whose payload is anything but a proper enrollment (a map of
    random values, or the right keys with random values): refused, nothing enrolled."""
    device = Identity.generate()
    fields = st.fixed_dictionaries(
        {"at": values, "device": values, "hub": values, "name": values, "role": values}
    )
    payloads = st.dictionaries(st.text(max_size=8), values, max_size=6) | fields

    def send(p: dict[str, Any]) -> None:
        try:
            raw = codec.pack(p)
        except CodecError:
            raw = msgpack.packb(p, use_bin_type=True)
        _enroll(fuzzed, forge.enroll_request(device, raw))

    _each(payloads, send)


@pytest.mark.usefixtures("unchanged")
def test_heads_random_queries(fuzzed: Fuzzed) -> None:
    def send(b: bytes) -> None:
        r = call(fuzzed.port, "POST", "/v1/heads", b, {"Content-Type": MSGPACK})
        out = refused(r, ok_statuses=(200,))
        if out is not None:
            assert isinstance(out["heads"], list), out

    shapes = packed(values) | packed(st.lists(values, max_size=4).map(lambda v: {"origins": v}))
    _each(shapes | st.binary(max_size=512), send)


_URL_CHARS = string.ascii_letters + string.digits + "-._~%/:@!$&'()*+,;=?"


@pytest.mark.usefixtures("unchanged")
def test_head_and_hello_random_arguments(fuzzed: Fuzzed) -> None:
    def send(arg: tuple[str, str]) -> None:
        which, text = arg
        path = f"/v1/heads/{quote(text, safe='')}" if which == "head" else (
            f"/v1/hello?nonce={quote(text, safe='')}")  # fmt: skip
        refused(call(fuzzed.port, "GET", path), ok_statuses=(200,))

    _each(st.tuples(st.sampled_from(["head", "hello"]), st.text(max_size=200)), send)


@pytest.mark.usefixtures("unchanged")
def test_random_methods_and_paths(fuzzed: Fuzzed) -> None:
    paths = st.sampled_from(["/v1/hello", "/v1/enroll", "/v1/heads", "/v1/push", "/v1/status",
                             "/v1/devices", "/v1/forks", "/metrics", "/", "/v1/devices/X/approve",
                             "/v1/"])  # fmt: skip
    tails = st.text(alphabet=_URL_CHARS, max_size=60)
    methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                               "PROPFIND", "PURGE"])  # fmt: skip

    def send(arg: tuple[str, str, str, bytes]) -> None:
        method, path, tail, body = arg
        target = path + tail
        if not target.startswith("/"):
            target = "/" + target
        r = call(fuzzed.port, method, target, body, {"Content-Type": MSGPACK})
        refused(r, ok_statuses=(200,))
        if r.status == 200 and target.startswith("/v1/push"):
            refused_push(r)

    _each(st.tuples(methods, paths, tails, st.binary(max_size=64)), send)


@pytest.mark.usefixtures("unchanged")
def test_admin_random_authorization(fuzzed: Fuzzed) -> None:
    """Random printable Authorization values (the token excepted) never approve anything."""
    ident = fingerprint(fuzzed.held.public)

    def send(auth: str) -> None:
        if auth.strip() == f"Bearer {fuzzed.token}":
            return
        r = call(fuzzed.port, "POST", f"/v1/devices/{ident}/approve", b"",
                 {"Authorization": auth, "Accept": "application/json"})  # fmt: skip
        refused(r)
        assert r.status == 401 and r.error["code"] == "unauthorized", str(r)

    printable = st.text(alphabet=string.printable.strip() + " ", max_size=80)
    near = st.builds(lambda cut: f"Bearer {fuzzed.token[:cut]}", st.integers(0, 60))
    _each(printable | near, send)


@pytest.mark.xfail(strict=True, reason="finding 10: aiohttp's own 400 replies are text/plain, "
                   "not the documented JSON error (bad_http)")  # fmt: skip
@pytest.mark.usefixtures("unchanged")
def test_raw_http_header_bytes(fuzzed: Fuzzed) -> None:
    """Random bytes in a header name or value, or as the request line: whatever the parser
    thinks of them, the answer is a documented reply (a refusal is ``bad_http`` JSON)."""

    def send(arg: tuple[str, bytes]) -> None:
        where, junk = arg
        if where == "value":
            data = b"GET /v1/hello HTTP/1.1\r\nHost: x\r\nX-Fuzz: " + junk + b"\r\n\r\n"
        elif where == "name":
            data = b"GET /v1/hello HTTP/1.1\r\nHost: x\r\n" + junk + b": 1\r\n\r\n"
        else:
            data = junk + b"\r\nHost: x\r\n\r\n"
        refused(exchange(fuzzed.port, data), ok_statuses=(200,))

    _each(st.tuples(st.sampled_from(["value", "name", "line"]), st.binary(min_size=1, max_size=60)),
          send)  # fmt: skip
