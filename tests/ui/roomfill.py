"""A big room for the console's scale test and bench/console.py: ``devices`` laptops with
``entries`` signed entries in all, pushed to a running hub over HTTP as laptops push them.

Entries come in pairs (double entry): two laptops type each form, so ``entries / 2`` TPS,
most of them verified; a ``conflicts`` share of the second readings differs by one vote.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator
from typing import Any

from hub.protocol import codec, enroll, entry, record
from hub.protocol.identity import Identity
from tests.helpers import ENTERED_AT, forms

MSGPACK = "application/msgpack"


def post(url: str, body: bytes, timeout: float = 120.0) -> Any:
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", MSGPACK)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return codec.unpack(r.read(), canonical=False)


def enroll_all(url: str, hub_public: bytes, idents: list[Identity], name: str = "Meja") -> None:
    for i, ident in enumerate(idents):
        raw = enroll.make_request(ident, hub_public, f"{name} {i + 1:03d}", "laptop", ENTERED_AT)
        post(url + "/v1/enroll", raw)


def records(
    idents: list[Identity],
    entries: int,
    conflicts: float = 0.01,
    seed: int = 1,
    double: bool = True,
) -> list[list[record.Record]]:
    """Each laptop's log; laptop i and laptop i + n/2 type the same forms (``double``), or
    each laptop its own forms."""
    rng = random.Random(seed)
    half = len(idents) // 2 if double else len(idents)
    per = entries // len(idents)
    bodies = [entry.parse(f) for f in forms(half * per, seed=seed)]
    logs: list[list[record.Record]] = []
    for i, ident in enumerate(idents):
        mine = bodies[(i % half) * per : (i % half + 1) * per]
        if i >= half:
            mine = [_second(b, rng, conflicts) for b in mine]
        prev, log = record.GENESIS, []
        for seq, b in enumerate(mine, 1):
            rec = record.make(ident, seq, prev, entry.encode_body(b, ENTERED_AT + seq))
            log.append(rec)
            prev = rec.hash
        logs.append(log)
    return logs


def _second(body: dict[str, Any], rng: random.Random, conflicts: float) -> dict[str, Any]:
    b = json.loads(json.dumps(body))
    b["operator"] = "Operator 02"
    if rng.random() < conflicts and b.get("suara"):
        first = sorted(b["suara"])[0]
        b["suara"][first] = (b["suara"][first] + 1) % 1000
        return entry.parse(b)
    return b


def batches(logs: list[list[record.Record]], size: int = 1000) -> Iterator[list[bytes]]:
    flat = [r.raw for log in logs for r in log]
    for i in range(0, len(flat), size):
        yield flat[i : i + size]


def push_all(url: str, logs: list[list[record.Record]]) -> int:
    n = 0
    for batch in batches(logs):
        reply = post(url + "/v1/push", codec.pack({"records": batch}))
        n += reply["accepted"]
    return n
