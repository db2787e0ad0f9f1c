"""The fault proxy itself: each fault does what it says, and a seed fixes the decisions."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import Counter

import pytest

from hub.protocol import clock, codec, enroll
from hub.protocol.identity import Identity
from tests.integration.faultproxy import FaultConfig, FaultPlan
from tests.integration.procs import Procs, call_msgpack


def kinds(seed: int, n: int, **probs: float) -> list[str]:
    plan = FaultPlan(seed, FaultConfig(**probs))
    out = []
    for _ in range(n):
        d = plan.decide()
        out.append((d.kind or "ok") + ("+slow" if d.slow_s else ""))
    return out


def test_same_seed_same_decisions() -> None:
    probs = {"p_busy": 0.1, "p_reset": 0.1, "p_drop": 0.1, "p_slow": 0.2}
    a, b, c = kinds(7, 500, **probs), kinds(7, 500, **probs), kinds(8, 500, **probs)
    assert a == b
    assert a != c
    n = Counter(k.split("+")[0] for k in a)
    assert {"busy", "reset", "drop", "ok"} <= n.keys()
    assert not any(k in a for k in ("busy+slow", "reset+slow"))  # nothing to delay
    assert any(k.endswith("+slow") for k in a)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultConfig(p_busy=0.5, p_reset=0.3, p_drop=0.3).check()
    with pytest.raises(ValueError, match="unknown"):
        FaultConfig().update({"p_loss": 0.1})
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        FaultConfig().update({"p_slow": 2})


def http_get(url: str) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url, headers={"Accept": "application/msgpack"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def test_each_fault_against_a_real_hub(procs: Procs) -> None:
    target = procs.hub("target", national=True).start()
    proxy = procs.fault_proxy("proxy", target.url, seed=1).start()
    hello = target.url + "/v1/hello"

    # No faults: the answer passes through byte for byte.
    status, body, headers = http_get(proxy.url + "/v1/hello")
    assert status == 200 and body == http_get(hello)[1]
    assert headers["Content-Type"] == "application/msgpack"
    assert codec.unpack(body, canonical=False)["role"] == "root"

    proxy.configure(p_busy=1.0, retry_after=1)
    status, _body, headers = http_get(proxy.url + "/v1/hello")
    assert status == 503 and headers["Retry-After"] == "1"

    proxy.configure(p_busy=0.0, p_reset=1.0)
    with pytest.raises(OSError):
        http_get(proxy.url + "/v1/hello")
    assert proxy.stats()["counts"]["forwarded"] == 1  # neither busy nor reset reached it

    # Dropped: the target commits the enrollment, the sender hears nothing.
    ident = Identity.generate()
    _s, h = call_msgpack(hello)
    raw = enroll.make_request(ident, h["public"], "dropped", "laptop", clock.now_s())
    proxy.configure(p_reset=0.0, p_drop=1.0)
    req = urllib.request.Request(proxy.url + "/v1/enroll", data=raw, method="POST",
                                 headers={"Content-Type": "application/msgpack"})  # fmt: skip
    with pytest.raises(OSError):
        urllib.request.urlopen(req, timeout=30)
    assert target.device("dropped") is not None

    proxy.configure(p_drop=0.0, p_slow=1.0, slow_s=0.2)
    assert http_get(proxy.url + "/v1/hello")[0] == 200

    target.kill9()
    proxy.configure(p_slow=0.0)
    assert http_get(proxy.url + "/v1/hello")[0] == 502

    st = proxy.stats()
    assert st["counts"] == {"busy": 1, "reset": 1, "drop": 1, "cut": 0, "slow": 1, "requests": 6,
                            "forwarded": 3, "ok": 2, "upstream_error": 1}  # fmt: skip
    assert st["paths"]["drop"] == {"/v1/enroll": 1}
    assert st["log"] == ["ok", "busy", "reset", "drop", "slow", "upstream_error"]
