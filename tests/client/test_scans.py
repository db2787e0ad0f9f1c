"""`c1client enter` takes scan file paths: the files go into the blob store, the hashes into
the signed entry."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hub.shared.blobs import BlobStore
from tests.shared.images import jpeg, png

from .conftest import Invoke, make_form


def test_enter_stores_scan_files_and_signs_their_hashes(
    initialised: Invoke, tmp_path: Path, data_dir: Path
) -> None:
    forms_dir = tmp_path / "forms"
    (forms_dir / "scans").mkdir(parents=True)
    page1, page2 = forms_dir / "scans" / "p1.png", tmp_path / "p2.jpg"
    page1.write_bytes(png())
    page2.write_bytes(jpeg())
    h1, h2 = hashlib.sha256(png()).hexdigest(), hashlib.sha256(jpeg()).hexdigest()
    already = "ab" * 32  # a hash is taken as it is
    form = make_form(scans=["scans/p1.png", str(page2), already])
    src = forms_dir / "in.json"
    src.write_text(json.dumps(form))
    r = initialised("enter", str(src), "--json")
    assert r.exit_code == 0, r.output
    shown = json.loads(initialised("show", "1", "--json").output)
    assert shown["entry"]["scans"] == [h1, h2, already]
    blobs = BlobStore(data_dir / "blobs")
    assert blobs.has(h1) and blobs.has(h2) and not blobs.has(already)


def test_a_scan_that_is_not_an_image_rejects_only_its_entry(
    initialised: Invoke, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    good = make_form(seed=2, tps="9901010001002")
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps(make_form(scans=["notes.png"])) + "\n"
        + json.dumps(make_form(scans=["missing.png"], tps="9901010001003")) + "\n"
        + json.dumps(good) + "\n"
    )  # fmt: skip
    r = initialised("enter", str(src), "--json")
    assert r.exit_code == 1
    out = json.loads(r.output)
    assert [s["tps"] for s in out["saved"]] == ["9901010001002"]
    codes = [(x["index"], x["code"]) for x in out["rejected"]]
    assert codes == [(0, "bad_scan"), (1, "bad_scan")]
    assert "not a JPEG, PNG or PDF" in out["rejected"][0]["reason"]
    assert "pindaian" in out["rejected"][0]["reason_id"]
    assert "cannot read" in out["rejected"][1]["reason"]
