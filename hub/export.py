"""Exports: CSV and JSON lines for spreadsheets, and a signed bundle anyone can verify offline.

All three stream the hub's records from a read-only SQLite connection (the running hub keeps
writing meanwhile; WAL lets readers see a consistent snapshot), so memory does not grow with
the store.

Bundle format (``.c1b``): a sequence of canonical msgpack values, one after another::

    {"bundle": 1, "created_at": int, "hub": bin32, "name": str}           header
    ["endorsement", bytes] ...                                              endorsements
    ["record", bytes] ...                                                   records, by origin+seq
    {"count": int, "sha256": bin32, "sig": bin64}                           trailer

``sha256`` covers every byte before the trailer; ``sig`` is the exporting hub's Ed25519
signature over it (domain ``c1hub/bundle/v1``). ``c1hub verify`` checks the trailer, every
record's own signature, each origin's chain (seq 1, 2, ... with matching ``prev``) and every
endorsement's signature — with nothing but the file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgpack

from hub.protocol import chain, codec, enroll, entry, identity, record
from hub.protocol.errors import ProtocolError
from hub.protocol.identity import Identity
from hub.schema import DB_FILE

BUNDLE_DOMAIN = b"c1hub/bundle/v1"
CSV_COLUMNS = [
    "device", "seq", "hash", "received_at", "entered_at", "election", "form", "tps", "operator",
    "flags", "sah", "tidak_sah", "total", "pengguna_total_j", "votes", "supersedes", "note",
]  # fmt: skip


def _connect(data_dir: Path) -> sqlite3.Connection:
    path = data_dir / DB_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {data_dir} a hub data folder?")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _rows(db: sqlite3.Connection) -> Iterator[tuple[str, int, bytes, int, bytes, str]]:
    yield from db.execute(
        "SELECT d.node_id, r.seq, r.hash, r.received_at, r.raw, r.flags FROM records r"
        " JOIN devices d ON d.id = r.dev ORDER BY r.dev, r.seq"
    )


def export_csv(data_dir: Path, out: IO[str]) -> int:
    """One row per stored record (flags as rule ids, votes as ``no:votes;...``)."""
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    n = 0
    with _connect(data_dir) as db:
        for node_id, seq, h, received, raw, flags in _rows(db):
            b = entry.decode_body(record.decode(raw).body)
            votes = (
                b["suara"].items()
                if "suara" in b
                else ((k, p["jumlah"]) for k, p in b["partai"].items())
            )
            w.writerow([
                node_id, seq, bytes(h).hex(), received, b["entered_at"], b["election"],
                b["form"], b["tps"], b["operator"], flags.replace(",", " "), b["sah"],
                b["tidak_sah"], b["total"], b["pengguna_total"]["j"],
                ";".join(f"{k}:{v}" for k, v in votes), b.get("supersedes") or "", b["note"],
            ])  # fmt: skip
            n += 1
    return n


def export_jsonl(data_dir: Path, out: IO[str]) -> int:
    """One JSON object per record: origin, seq, hash, flags and the entry in its input format."""
    n = 0
    with _connect(data_dir) as db:
        for node_id, seq, h, received, raw, flags in _rows(db):
            body = entry.decode_body(record.decode(raw).body)
            obj = {
                "device": node_id,
                "seq": seq,
                "hash": bytes(h).hex(),
                "received_at": received,
                "flags": [f for f in flags.split(",") if f],
                "entry": entry.to_json(body),
            }
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            n += 1
    return n


def export_bundle(data_dir: Path, hub: Identity, name: str, out: IO[bytes], now: int) -> int:
    digest = hashlib.sha256()

    def put(obj: Any) -> None:
        data = codec.pack(obj)
        digest.update(data)
        out.write(data)

    put({"bundle": 1, "created_at": now, "hub": hub.public, "name": name})
    n = 0
    with _connect(data_dir) as db:
        for (raw,) in db.execute("SELECT raw FROM endorsements ORDER BY device, hub"):
            put(["endorsement", bytes(raw)])
        for (raw,) in db.execute(
            "SELECT endorsement FROM devices WHERE endorsement IS NOT NULL ORDER BY id"
        ):
            put(["endorsement", bytes(raw)])
        for _node, _seq, _h, _at, raw, _flags in _rows(db):
            put(["record", bytes(raw)])
            n += 1
    h = digest.digest()
    out.write(codec.pack({"count": n, "sha256": h, "sig": hub.sign(BUNDLE_DOMAIN, h)}))
    return n


@dataclass(slots=True)
class BundleReport:
    hub_id: str = ""
    name: str = ""
    created_at: int = 0
    records: int = 0
    origins: int = 0
    endorsements: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hub": self.hub_id,
            "name": self.name,
            "created_at": self.created_at,
            "records": self.records,
            "origins": self.origins,
            "endorsements": self.endorsements,
            "problems": self.problems,
        }


def verify_bundle(f: IO[bytes]) -> BundleReport:
    """Check a bundle with nothing but its bytes. Problems are listed, not raised."""
    rep = BundleReport()
    unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=True, max_buffer_size=1 << 24)
    digest = hashlib.sha256()
    logs = chain.Logs()
    header: dict[str, Any] | None = None
    trailer: dict[str, Any] | None = None
    try:
        for obj in unpacker:
            if trailer is not None:
                rep.problems.append("data after the trailer")
                break
            if header is None:
                if not isinstance(obj, dict) or obj.get("bundle") != 1:
                    rep.problems.append("not a c1hub bundle (no version-1 header)")
                    return rep
                header = obj
                rep.hub_id = identity.fingerprint(obj["hub"])
                rep.name, rep.created_at = str(obj.get("name", "")), int(obj["created_at"])
                digest.update(codec.pack(obj))
                continue
            if isinstance(obj, dict):
                trailer = obj
                continue
            digest.update(codec.pack(obj))
            kind, raw = obj
            if kind == "endorsement":
                rep.endorsements += 1
                try:
                    enroll.open_endorsement(raw)
                except ProtocolError as exc:
                    rep.problems.append(f"endorsement {rep.endorsements}: {exc.message}")
            elif kind == "record":
                _check_record(raw, logs, rep)
            else:
                rep.problems.append(f"unknown item kind {kind!r}")
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        rep.problems.append(f"the file is damaged or truncated ({type(exc).__name__})")
        return rep
    rep.origins = len(logs.walks)
    if header is None:
        rep.problems.append("empty file")
    elif trailer is None:
        rep.problems.append("no trailer: the file is truncated")
    else:
        if trailer.get("count") != rep.records:
            rep.problems.append(f"trailer says {trailer.get('count')} records, found {rep.records}")
        if trailer.get("sha256") != digest.digest():
            rep.problems.append("content hash does not match the trailer: the file was changed")
        else:
            try:
                identity.verify(header["hub"], BUNDLE_DOMAIN, digest.digest(), trailer["sig"])
            except ProtocolError:
                rep.problems.append("the hub's signature over the bundle does not verify")
    return rep


_FINDINGS = {
    chain.GAP: "seq {seq} follows {after} (a gap)",
    chain.CHAIN: "seq {seq} does not chain to seq {after}",
    chain.BAD_SIGNATURE: "seq {seq}: the signature does not verify",
    chain.BAD_BODY: "seq {seq}: {detail}",
    chain.SEQ_MISMATCH: "seq {seq} names seq {said}",
    chain.WRONG_ORIGIN: "seq {seq} is signed by another device",
}


def _check_record(raw: bytes, logs: chain.Logs, rep: BundleReport) -> None:
    """One record of the bundle, checked with the one chain checker (``hub.protocol.chain``)."""
    rep.records += 1
    for f in logs.check(raw).findings:
        if f.code == chain.BAD_RECORD:
            rep.problems.append(f"record {rep.records}: {f.detail}")
            continue
        who = identity.fingerprint(record.decode(raw).origin)
        text = _FINDINGS[f.code].format(seq=f.seq, after=f.after, said=f.said, detail=f.detail)
        rep.problems.append(f"device {who}: {text}")
