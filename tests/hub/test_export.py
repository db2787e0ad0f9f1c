"""Exports from a real hub store: CSV, JSON lines, and the signed bundle verified offline."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hub.config import HubConfig
from hub.export import export_bundle, export_csv, export_jsonl, verify_bundle
from hub.node import init_data_dir, open_offline
from hub.protocol import enroll
from hub.protocol.identity import Identity
from tests.helpers import chain, forms


async def filled_hub(tmp: Path) -> tuple[Path, Identity, list[bytes]]:
    ident = init_data_dir(tmp / "h", "Export room")
    laptops = [Identity.generate() for _ in range(2)]
    raws: list[bytes] = []
    async with open_offline(HubConfig(data_dir=tmp / "h", mdns=False)) as hub:
        for i, lp in enumerate(laptops):
            await hub.enroll(enroll.make_request(lp, hub.ident.public, f"L{i}", "laptop", 1))
            await hub.approve(lp.node_id)
            recs = [r.raw for r in chain(lp, forms(7, seed=i + 1))]
            await hub.push(recs)
            raws += recs
    return tmp / "h", ident, raws


async def test_csv_and_jsonl_have_every_entry(tmp_path: Path) -> None:
    data, _ident, _raws = await filled_hub(tmp_path)
    out = io.StringIO()
    assert export_csv(data, out) == 14
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 14 and rows[0]["form"] == "PPWP" and len(rows[0]["tps"]) == 13
    assert {r["seq"] for r in rows} == {str(i) for i in range(1, 8)}
    out = io.StringIO()
    assert export_jsonl(data, out) == 14
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert objs[0]["entry"]["election"] == "pemilu-2024" and objs[0]["seq"] == 1


async def test_bundle_verifies_offline_and_tampering_is_caught(tmp_path: Path) -> None:
    data, ident, _raws = await filled_hub(tmp_path)
    buf = io.BytesIO()
    assert export_bundle(data, ident, "Export room", buf, 1_707_900_000) == 14
    good = buf.getvalue()
    rep = verify_bundle(io.BytesIO(good))
    assert rep.ok, rep.problems
    assert (rep.records, rep.origins, rep.endorsements) == (14, 2, 2)
    assert rep.hub_id == ident.node_id
    # Any flipped byte is caught.
    for pos in (len(good) // 3, len(good) // 2, len(good) - 80):
        bad = bytearray(good)
        bad[pos] ^= 0x01
        assert not verify_bundle(io.BytesIO(bytes(bad))).ok
    # A truncated file is caught.
    rep = verify_bundle(io.BytesIO(good[: len(good) - 100]))
    assert not rep.ok and rep.problems
    # A bundle re-signed by another hub key does not pass as this hub's: the header names the
    # key, so a forger must change it, and then the trailer no longer matches.
    other = Identity.generate()
    forged = io.BytesIO()
    export_bundle(data, other, "Export room", forged, 1_707_900_000)
    rep = verify_bundle(io.BytesIO(forged.getvalue()))
    assert rep.ok and rep.hub_id == other.node_id != ident.node_id


def _bundle(hub: Identity, raws: list[bytes]) -> bytes:
    """A bundle of these records, signed by ``hub`` (the format export_bundle writes)."""
    import hashlib

    from hub.export import BUNDLE_DOMAIN
    from hub.protocol import codec

    items = [{"bundle": 1, "created_at": 1, "hub": hub.public, "name": "x"}]
    items += [["record", raw] for raw in raws]
    digest = hashlib.sha256(b"".join(codec.pack(i) for i in items)).digest()
    trailer = {"count": len(raws), "sha256": digest, "sig": hub.sign(BUNDLE_DOMAIN, digest)}
    return b"".join(codec.pack(i) for i in [*items, trailer])


def test_bundle_problems_name_the_device_and_the_break_in_its_chain() -> None:
    hub, lp = Identity.generate(), Identity.generate()
    recs = [r.raw for r in chain(lp, forms(4, seed=3))]
    rep = verify_bundle(io.BytesIO(_bundle(hub, recs)))
    assert rep.ok and (rep.records, rep.origins) == (4, 1)
    rep = verify_bundle(io.BytesIO(_bundle(hub, [recs[0], recs[2], recs[3]])))
    assert rep.problems == [f"device {lp.node_id}: seq 3 follows 1 (a gap)"]
    other = [r.raw for r in chain(lp, forms(2, seed=9))]  # another history of the same device
    rep = verify_bundle(io.BytesIO(_bundle(hub, [recs[0], other[1]])))
    assert rep.problems == [f"device {lp.node_id}: seq 2 does not chain to seq 1"]
