"""(Re)generate the c1hub wire-format test vectors in this folder.

    .venv/bin/python tests/vectors/make_vectors.py           # write the .bin files + manifest
    .venv/bin/python tests/vectors/make_vectors.py --check   # exit 1 if the files differ

Everything is deterministic: identities come from fixed seeds, times are fixed, and Ed25519
signatures are deterministic (RFC 8032), so the same code always produces the same bytes.
Regenerate only on purpose, when the wire format itself changes: a changed vector means every
node already in the field disagrees with the new code.

``manifest.json`` says what each file holds, with the inputs needed to rebuild it
independently (tests/protocol/test_codec.py does exactly that).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from hub.protocol import entry, receipt, record
from hub.protocol.identity import Identity

HERE = Path(__file__).resolve().parent
MANIFEST = "manifest.json"

SEEDS = {
    "laptop": hashlib.sha256(b"c1hub test vector: laptop").digest(),
    "hub": hashlib.sha256(b"c1hub test vector: hub").digest(),
}
ENTERED_AT_PPWP = 1707890400  # 2024-02-14 13:00 WIB
ENTERED_AT_DPR = 1707891300  # 2024-02-14 13:15 WIB
RECEIPT_AT = 1707891302

TPS = "3171011001001"  # TPS 001, kelurahan Gambir, Jakarta Pusat

PPWP: dict[str, Any] = {
    "election": "pemilu-2024",
    "form": "PPWP",
    "tps": TPS,
    "pemilih_dpt": {"l": 140, "p": 152, "j": 292},
    "pengguna_dpt": {"l": 110, "p": 121, "j": 231},
    "pengguna_dptb": {"l": 2, "p": 1, "j": 3},
    "pengguna_dpk": {"l": 1, "p": 0, "j": 1},
    "pengguna_total": {"l": 113, "p": 122, "j": 235},
    "surat_suara": {"diterima": 298, "digunakan": 235, "rusak": 1, "sisa": 62},
    "disabilitas": {"l": 1, "p": 2, "j": 3},
    "suara": {"1": 96, "2": 99, "3": 34},
    "sah": 229,
    "tidak_sah": 6,
    "total": 235,
    "scans": [hashlib.sha256(b"C.Hasil PPWP TPS 001 halaman 1").hexdigest()],
    "operator": "Siti Rahmawati",
    "note": "",
}

DPR: dict[str, Any] = {
    "election": "pemilu-2024",
    "form": "DPR",
    "tps": TPS,
    "pemilih_dpt": {"l": 140, "p": 152, "j": 292},
    "pengguna_dpt": {"l": 110, "p": 121, "j": 231},
    "pengguna_dptb": {"l": 2, "p": 1, "j": 3},
    "pengguna_dpk": {"l": 1, "p": 0, "j": 1},
    "pengguna_total": {"l": 113, "p": 122, "j": 235},
    "surat_suara": {"diterima": 298, "digunakan": 235, "rusak": 0, "sisa": 63},
    "partai": {
        "1": {"partai": 12, "caleg": {"1": 30, "2": 8, "3": 5}, "jumlah": 55},
        "2": {"partai": 20, "caleg": {"1": 41, "2": 10}, "jumlah": 71},
        "5": {"partai": 9, "caleg": {"1": 25, "2": 14, "3": 3, "4": 2}, "jumlah": 53},
        "24": {"partai": 15, "caleg": {"1": 22, "2": 10}, "jumlah": 47},
    },
    "sah": 226,
    "tidak_sah": 9,
    "total": 235,
    "scans": [
        hashlib.sha256(b"C.Hasil DPR TPS 001 halaman 1").hexdigest(),
        hashlib.sha256(b"C.Hasil DPR TPS 001 halaman 2").hexdigest(),
    ],
    "operator": "Budi Santoso",
    "note": "Koreksi: suara partai 2 dibaca ulang dari lembar asli — halaman 2",
    "supersedes": hashlib.sha256(b"an earlier DPR entry for TPS 001").hexdigest(),
}


def _ident(name: str) -> dict[str, str]:
    ident = Identity.from_seed(SEEDS[name])
    return {"seed": SEEDS[name].hex(), "public": ident.public.hex(), "node_id": ident.node_id}


def build() -> tuple[dict[str, bytes], dict[str, Any]]:
    """All vector files (name -> bytes) and the manifest describing them."""
    laptop = Identity.from_seed(SEEDS["laptop"])
    hub = Identity.from_seed(SEEDS["hub"])

    body_ppwp = entry.encode_body(entry.parse(PPWP), ENTERED_AT_PPWP)
    body_dpr = entry.encode_body(entry.parse(DPR), ENTERED_AT_DPR)
    rec1 = record.make(laptop, 1, record.GENESIS, body_ppwp)
    rec2 = record.make(laptop, 2, rec1.hash, body_dpr)
    rcpt = receipt.issue(hub, laptop.public, 2, rec2.hash, RECEIPT_AT)

    files = {
        "entry-ppwp.bin": body_ppwp,
        "entry-dpr.bin": body_dpr,
        "record-1-ppwp.bin": rec1.raw,
        "record-2-dpr.bin": rec2.raw,
        "receipt-2.bin": rcpt.raw,
    }
    vectors: dict[str, dict[str, Any]] = {
        "entry-ppwp.bin": {
            "kind": "entry_body",
            "about": "canonical body of a PPWP entry (votes per candidate, one scan, no note)",
            "input": PPWP,
            "entered_at": ENTERED_AT_PPWP,
        },
        "entry-dpr.bin": {
            "kind": "entry_body",
            "about": "canonical body of a DPR entry (votes per party, two scans, a non-ASCII "
            "note, supersedes, no disabilitas row)",
            "input": DPR,
            "entered_at": ENTERED_AT_DPR,
        },
        "record-1-ppwp.bin": {
            "kind": "record",
            "about": "seq 1 of the laptop's log: the PPWP body, prev = 32 zero bytes",
            "signer": "laptop",
            "seq": 1,
            "prev": record.GENESIS.hex(),
            "body": "entry-ppwp.bin",
        },
        "record-2-dpr.bin": {
            "kind": "record",
            "about": "seq 2 of the laptop's log: the DPR body, prev = SHA-256 of record 1",
            "signer": "laptop",
            "seq": 2,
            "prev": rec1.hash.hex(),
            "body": "entry-dpr.bin",
        },
        "receipt-2.bin": {
            "kind": "receipt",
            "about": "the hub's receipt for the laptop's log up to seq 2",
            "issuer": "hub",
            "origin": "laptop",
            "seq": 2,
            "hash": rec2.hash.hex(),
            "at": RECEIPT_AT,
        },
    }
    for name, data in files.items():
        vectors[name]["sha256"] = hashlib.sha256(data).hexdigest()
    manifest = {
        "about": "c1hub wire-format test vectors; regenerate with tests/vectors/make_vectors.py",
        "identities": {name: _ident(name) for name in SEEDS},
        "vectors": vectors,
    }
    return files, manifest


def _manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    files, manifest = build()
    wanted = dict(files)
    wanted[MANIFEST] = _manifest_text(manifest).encode("utf-8")
    if argv[1:] == ["--check"]:
        stale = [
            name
            for name, data in wanted.items()
            if not (HERE / name).is_file() or (HERE / name).read_bytes() != data
        ]
        for name in stale:
            print(f"differs: {name}")
        return 1 if stale else 0
    if argv[1:]:
        print(__doc__)
        return 2
    for name, data in wanted.items():
        (HERE / name).write_bytes(data)
        print(f"wrote {name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
