"""The C1 (C.Hasil) entry: its JSON input schema and its canonical body.

An entry's *body* is the normalised JSON object (docs/entry-format.md) plus ``entered_at``,
encoded once with ``codec.pack``. ``parse`` validates a JSON object and returns the normalised
dict; ``encode_body``/``decode_body`` turn it into bytes and back (``decode_body`` re-validates,
so a hub never trusts a sender's body shape).

Schema errors raise ``SchemaError`` naming the field (``pengguna_dpt.l``) and the problem.
Arithmetic problems are *not* schema errors: they are flags (``rules.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import codec
from .errors import CodecError, SchemaError

FORMS = ("PPWP", "DPR", "DPD", "DPRD_PROV", "DPRD_KABKO")
CANDIDATE_FORMS = ("PPWP", "DPD")  # votes per candidate: "suara"
PARTY_FORMS = ("DPR", "DPRD_PROV", "DPRD_KABKO")  # votes per party: "partai"

LPJ_FIELDS = ("pemilih_dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_dpk", "pengguna_total")
OPTIONAL_LPJ_FIELDS = ("disabilitas",)
SURAT_SUARA_KEYS = ("diterima", "digunakan", "rusak", "sisa")
_SURAT_SUARA_SORTED = tuple(sorted(SURAT_SUARA_KEYS))
TOTAL_FIELDS = ("sah", "tidak_sah", "total")

MAX_CELL = 999
MAX_CANDIDATES = 200
MAX_PARTIES = 60
MAX_CALEG = 120
MAX_SCANS = 64
MAX_OPERATOR = 120
MAX_NOTE = 2000
MAX_BODY = 64 * 1024

_ELECTION_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_TPS_RE = re.compile(r"[0-9]{13}")
_NUMBER_KEY_RE = re.compile(r"[1-9][0-9]{0,2}")
_HASH_RE = re.compile(r"[0-9a-f]{64}")

_REQUIRED = (
    "election",
    "form",
    "tps",
    *LPJ_FIELDS,
    *TOTAL_FIELDS,
    "operator",
)
_OPTIONAL = ("surat_suara", "disabilitas", "suara", "partai", "scans", "note", "supersedes")
_KNOWN = frozenset(_REQUIRED + _OPTIONAL)


def _cell(value: Any, field: str, sub: str | None = None) -> int:
    """A cell 0..999; ``field``.``sub`` names it (built only when there is an error: this runs
    for every number of every entry a hub receives)."""
    if type(value) is int and 0 <= value <= MAX_CELL:
        return value
    name = f"{field}.{sub}" if sub is not None else field
    if type(value) is not int:
        raise SchemaError(
            f"{name} must be a whole number 0..{MAX_CELL}, got {value!r}",
            field=name,
            pesan=f"{name} harus bilangan bulat 0..{MAX_CELL}, bukan {value!r}",
        )
    raise SchemaError(
        f"{name} is {value}, outside 0..{MAX_CELL} (three digit boxes)",
        field=name,
        pesan=f"{name} = {value}, di luar 0..{MAX_CELL} (tiga kotak angka)",
    )


def _obj(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SchemaError(
            f"{field} must be an object, got {type(value).__name__}",
            field=field,
            pesan=f"{field} harus berupa objek, bukan {type(value).__name__}",
        )
    return value


def _exact_keys(obj: Mapping[str, Any], keys: tuple[str, ...], field: str) -> None:
    for k in obj:
        if k not in keys:
            raise SchemaError(
                f"{field}.{k} is not a known field (expected {', '.join(keys)})",
                field=f"{field}.{k}",
                pesan=f"{field}.{k} bukan isian yang dikenal (seharusnya {', '.join(keys)})",
            )
    for k in keys:
        if k not in obj:
            raise SchemaError(
                f"{field}.{k} is missing", field=f"{field}.{k}", pesan=f"{field}.{k} belum diisi"
            )


def _lpj(value: Any, field: str) -> dict[str, int]:
    obj = _obj(value, field)
    _exact_keys(obj, ("l", "p", "j"), field)
    return {k: _cell(obj[k], field, k) for k in ("j", "l", "p")}  # canonical order


def _str(value: Any, field: str, max_len: int, *, allow_empty: bool = False) -> str:
    if type(value) is not str:
        raise SchemaError(
            f"{field} must be text, got {type(value).__name__}",
            field=field,
            pesan=f"{field} harus berupa teks, bukan {type(value).__name__}",
        )
    if not allow_empty and not value.strip():
        raise SchemaError(
            f"{field} must not be empty", field=field, pesan=f"{field} tidak boleh kosong"
        )
    if len(value) > max_len:
        raise SchemaError(
            f"{field} is {len(value)} characters, over {max_len}",
            field=field,
            pesan=f"{field} {len(value)} karakter, melebihi {max_len}",
        )
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise SchemaError(f"{field} contains control characters", field=field)
    return value


def _number_map(value: Any, field: str, max_items: int, what: str, one: str) -> Mapping[str, Any]:
    obj = _obj(value, field)
    if not obj:
        raise SchemaError(f"{field} has no {what}", field=field)
    if len(obj) > max_items:
        raise SchemaError(f"{field} has {len(obj)} {what}, over {max_items}", field=field)
    for k in obj:
        if type(k) is not str or not _NUMBER_KEY_RE.fullmatch(k):
            raise SchemaError(
                f"{field} key {k!r} is not a {one} number 1..999 (no leading zeros)",
                field=f"{field}.{k}",
            )
    return obj


def _suara(value: Any) -> dict[str, int]:
    obj = _number_map(value, "suara", MAX_CANDIDATES, "candidates", "candidate")
    return {k: _cell(obj[k], "suara", k) for k in sorted(obj)}


def _partai(value: Any) -> dict[str, dict[str, Any]]:
    obj = _number_map(value, "partai", MAX_PARTIES, "parties", "party")
    out: dict[str, dict[str, Any]] = {}
    for no in sorted(obj):
        f = f"partai.{no}"
        p = _obj(obj[no], f)
        _exact_keys(p, ("partai", "caleg", "jumlah"), f)
        caleg_obj = _obj(p["caleg"], f"{f}.caleg")
        if len(caleg_obj) > MAX_CALEG:
            raise SchemaError(
                f"{f}.caleg has {len(caleg_obj)} candidates, over {MAX_CALEG}", field=f"{f}.caleg"
            )
        caleg: dict[str, int] = {}
        for c in caleg_obj:
            if type(c) is not str or not _NUMBER_KEY_RE.fullmatch(c):
                raise SchemaError(
                    f"{f}.caleg key {c!r} is not a candidate number 1..999 (no leading zeros)",
                    field=f"{f}.caleg.{c}",
                )
        for c in sorted(caleg_obj):
            caleg[c] = _cell(caleg_obj[c], f"{f}.caleg", c)
        out[no] = {  # canonical key order
            "caleg": caleg,
            "jumlah": _cell(p["jumlah"], f, "jumlah"),
            "partai": _cell(p["partai"], f, "partai"),
        }
    return out


def _hash_hex(value: Any, field: str) -> str:
    if type(value) is not str or not _HASH_RE.fullmatch(value):
        raise SchemaError(
            f"{field} must be a SHA-256 hash as 64 lowercase hex characters", field=field
        )
    return value


def parse(obj: Any, *, body: bool = False) -> dict[str, Any]:
    """Validate a JSON entry object and return its normalised form, every map already in
    canonical key order (so ``codec.pack_ordered`` encodes it canonically without sorting).

    With ``body=True`` the object is a decoded body and must also carry ``entered_at``.
    """
    if not isinstance(obj, Mapping):
        raise SchemaError(f"an entry must be a JSON object, got {type(obj).__name__}")
    for k in obj:
        if k not in _KNOWN and not (body and k == "entered_at"):
            raise SchemaError(
                f"unknown field {k!r}", field=str(k), pesan=f"isian {k!r} tidak dikenal"
            )
    for k in _REQUIRED:
        if k not in obj:
            raise SchemaError(
                f"required field {k!r} is missing", field=k, pesan=f"isian wajib {k!r} belum ada"
            )

    out: dict[str, Any] = {}
    election = obj["election"]
    if type(election) is not str or not _ELECTION_RE.fullmatch(election):
        raise SchemaError(
            "election must be an id like 'pemilu-2024' (lowercase letters, digits, . _ -)",
            field="election",
            pesan="election harus berupa kode seperti 'pemilu-2024' (huruf kecil, angka, . _ -)",
        )
    out["election"] = election
    form = obj["form"]
    if form not in FORMS:
        raise SchemaError(
            f"form {form!r} is not a known form type (one of {', '.join(FORMS)})",
            field="form",
            pesan=f"jenis formulir {form!r} tidak dikenal (pilih {', '.join(FORMS)})",
        )
    out["form"] = form
    tps = obj["tps"]
    if type(tps) is not str or not _TPS_RE.fullmatch(tps):
        raise SchemaError(
            f"tps must be 13 digits (10-digit desa code + 3-digit TPS number), got {tps!r}",
            field="tps",
            pesan=f"tps harus 13 angka (10 angka kode desa + 3 angka nomor TPS), bukan {tps!r}",
        )
    out["tps"] = tps

    for f in LPJ_FIELDS:
        out[f] = _lpj(obj[f], f)
    if "disabilitas" in obj:
        out["disabilitas"] = _lpj(obj["disabilitas"], "disabilitas")
    if "surat_suara" in obj:
        ss = _obj(obj["surat_suara"], "surat_suara")
        _exact_keys(ss, SURAT_SUARA_KEYS, "surat_suara")
        out["surat_suara"] = {k: _cell(ss[k], "surat_suara", k) for k in _SURAT_SUARA_SORTED}

    if form in CANDIDATE_FORMS:
        if "partai" in obj:
            raise SchemaError(
                f"{form} has votes per candidate ('suara'), not 'partai'", field="partai"
            )
        if "suara" not in obj:
            raise SchemaError(f"{form} needs 'suara' (votes per candidate number)", field="suara")
        out["suara"] = _suara(obj["suara"])
    else:
        if "suara" in obj:
            raise SchemaError(f"{form} has votes per party ('partai'), not 'suara'", field="suara")
        if "partai" not in obj:
            raise SchemaError(f"{form} needs 'partai' (votes per party number)", field="partai")
        out["partai"] = _partai(obj["partai"])

    for f in TOTAL_FIELDS:
        out[f] = _cell(obj[f], f)

    scans = obj.get("scans", [])
    if not isinstance(scans, list):
        raise SchemaError("scans must be a list of SHA-256 hashes", field="scans")
    if len(scans) > MAX_SCANS:
        raise SchemaError(f"scans has {len(scans)} pages, over {MAX_SCANS}", field="scans")
    out["scans"] = [_hash_hex(s, f"scans[{i}]") for i, s in enumerate(scans)]
    out["operator"] = _str(obj["operator"], "operator", MAX_OPERATOR)
    out["note"] = _str(obj.get("note", ""), "note", MAX_NOTE, allow_empty=True)
    sup = obj.get("supersedes")
    if sup is not None:
        out["supersedes"] = _hash_hex(sup, "supersedes")
    if body:
        at = obj.get("entered_at")
        if type(at) is not int or not 0 <= at < 2**40:
            raise SchemaError("entered_at must be unix seconds", field="entered_at")
        out["entered_at"] = at
    return {k: out[k] for k in sorted(out)}  # canonical key order: see codec.pack_ordered


def encode_body(entry: Mapping[str, Any], entered_at: int) -> bytes:
    """The canonical body bytes of a parsed entry, stamped with ``entered_at`` (unix seconds)."""
    body = dict(entry)
    body["entered_at"] = entered_at
    data = codec.pack(body)
    if len(data) > MAX_BODY:
        raise SchemaError(f"entry is {len(data)} bytes encoded, over {MAX_BODY}")
    return data


def decode_body(data: bytes) -> dict[str, Any]:
    """Decode and re-validate body bytes. Raises CodecError or SchemaError."""
    obj = codec.unpack(data, max_size=MAX_BODY, canonical=False)  # checked below
    try:
        parsed = parse(obj, body=True)
    except SchemaError as exc:
        raise SchemaError(f"entry body: {exc.message}", field=exc.field) from None
    if codec.pack_ordered(parsed) != data:
        raise CodecError("entry body is not in normalised form")
    return parsed


def to_json(body: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON view of a body: the input format plus ``entered_at``, ``supersedes`` explicit."""
    out = dict(body)
    out.setdefault("supersedes", None)
    return out


def key(body: Mapping[str, Any]) -> tuple[str, str, str]:
    """What an entry is about: (election, form, tps)."""
    return (body["election"], body["form"], body["tps"])


_NOT_NUMBERS = ("operator", "note", "entered_at", "scans", "supersedes")


def numbers(body: Mapping[str, Any]) -> bytes:
    """The transcribed numbers of a body, canonically encoded; equal iff two entries agree."""
    return codec.pack_ordered({k: v for k, v in body.items() if k not in _NOT_NUMBERS})
