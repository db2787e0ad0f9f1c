"""Small builders shared by hub, client and integration tests."""

from __future__ import annotations

import itertools
import random
from typing import Any

from hub.protocol import entry, record
from hub.protocol.identity import Identity
from hub.shared import generator

ENTERED_AT = 1_707_900_000  # 14 Feb 2024


def forms(n: int, seed: int = 7, form: str = "PPWP") -> list[dict[str, Any]]:
    """``n`` clean forms for distinct TPS; different seeds give different TPS."""
    rng = random.Random(seed)
    codes = itertools.islice(generator.tps_codes(None, "31", rng), seed * 10_000, None)
    return [generator.make_form(rng, next(codes), form, operator="Operator 01") for _ in range(n)]


def chain(
    ident: Identity, bodies: list[dict[str, Any]], start: int = 1, prev: bytes = record.GENESIS
) -> list[record.Record]:
    """Sign ``bodies`` as consecutive records of ``ident``'s log from seq ``start``."""
    out = []
    for i, f in enumerate(bodies):
        r = record.make(ident, start + i, prev, entry.encode_body(entry.parse(f), ENTERED_AT))
        out.append(r)
        prev = r.hash
    return out
