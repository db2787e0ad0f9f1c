"""The paper's words (``hub.protocol.paper``): one table the station and the console share."""

from __future__ import annotations

import pytest

from client.ui import layout
from hub.protocol import paper

FORMS = ("PPWP", "DPR", "DPD", "DPRD_PROV", "DPRD_KABKO")
TPS = "3171011001001"


def _rows(form: str) -> dict[str, object]:
    rows = layout.default_rows(form, TPS)
    if form == "DPD":
        rows = {"suara": ["1", "2", "12"]}
    elif "partai" in rows:
        rows = {"partai": {p: ["1", "2"] for p in rows["partai"]}}  # type: ignore[attr-defined]
    return rows


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("lang", ["id", "en"])
def test_every_cell_of_every_form_has_a_section_and_a_label(form: str, lang: str) -> None:
    names = layout.cell_names(form, _rows(form))
    labels = [paper.cell_label(form, n, lang) for n in names]
    assert all(lab.section in paper.SECTIONS for lab in labels)
    assert all(lab.row and lab.row != n for lab, n in zip(labels, names, strict=True))
    assert len(set(labels)) == len(labels)  # no two cells read the same
    # the station walks the cells in the paper's order; the console sorts them the same way
    assert sorted(names, key=paper.cell_order) == names
    assert [lab.section for lab in labels] == sorted(
        (lab.section for lab in labels), key=paper.SECTIONS.index
    )


def test_labels_are_the_papers_words() -> None:
    assert paper.cell_label("PPWP", "pemilih_dpt.l", "id") == ("I", "1. Pemilih dalam DPT · L")
    assert paper.cell_label("PPWP", "suara.2", "id").row == "Pasangan calon nomor 2"
    assert paper.cell_label("DPD", "suara.2", "en").row == "Candidate 2"
    assert paper.cell_label("DPR", "partai.5.caleg.3", "id").row == (
        "Partai 5 — NasDem · Calon nomor 3"
    )
    assert paper.cell_label("DPR", "partai.5.jumlah", "en") == ("IV", "Party 5 total")
    assert paper.cell_label("DPR", "surat_suara.rusak", "id") == (
        "II", "3. Surat suara rusak/keliru coblos"
    )  # fmt: skip
    assert paper.cell_label("DPR", "disabilitas.j", "en").section == "III"
    assert paper.cell_label("PPWP", "tidak_sah", "id") == ("V", "B. Jumlah suara tidak sah")
    assert paper.cell_label("PPWP", "seq", "id") == ("", "seq")
    # the section titles as printed on the C.Hasil (DESIGN §3: I voters ... V valid/invalid)
    titles = [paper.section_title("PPWP", s, "id") for s in paper.SECTIONS]
    assert [t.split(".")[0] for t in titles] == list(paper.SECTIONS)
    assert titles[0] == "I. DATA PEMILIH DAN PENGGUNA HAK PILIH"
    assert paper.section_title("DPR", "IV", "id") == "IV. PEROLEHAN SUARA PARTAI DAN CALON"


@pytest.mark.parametrize("lang", ["id", "en"])
def test_the_station_draws_its_form_with_the_same_words(lang: str) -> None:
    spec = layout.spec("DPR", TPS, _rows("DPR"), lang)
    sections = {s["id"]: s for s in spec["sections"]}
    for sid in paper.SECTIONS:
        assert sections[sid]["title"] == paper.section_title("DPR", sid, lang)
    first = sections["I"]["rows"][0]
    assert first["label"] == paper.label("pemilih_dpt", lang)
    assert paper.cell_label("DPR", first["cells"][0], lang).row.startswith(first["label"])
    party = sections["IV"]["parties"][4]
    assert party["title"] == paper.party_title("5", lang)
    ii = [r["label"] for r in sections["II"]["rows"]]
    assert ii == [paper.cell_label("DPR", c, lang).row for r in sections["II"]["rows"]
                  for c in r["cells"]]  # fmt: skip
