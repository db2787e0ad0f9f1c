"""Realistic C1 forms for the demo, tests and benchmarks.

Tallies are internally consistent (every rule R1–R10 holds) unless a *paper mistake* is added
on purpose, the kind KPPS officers and typists really make: 72 written as 172, valid and
invalid swapped, a row whose L + P does not make J, a total that is off. TPS codes come from the
polling-station master when one is given (real codes), otherwise from a synthetic province 99.

Deterministic: the same seed gives the same forms.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from hub.protocol.entry import FORMS
from hub.protocol.rules import expected_ballots, form_allowed
from hub.protocol.wilayah import Master

ELECTION = "pemilu-2024"
PPWP_WEIGHTS = {"1": 41.0, "2": 41.7, "3": 17.3}  # DKI Jakarta 2024, roughly
PARTIES = [str(n) for n in range(1, 19)] + ["24"]
DPD_CANDIDATES = 12
CALEG_PER_PARTY = 8
MISTAKES = ("hundred", "swap_sah", "lpj", "total", "users", "ballots")


def _split(rng: random.Random, total: int, weights: list[float]) -> list[int]:
    """Split ``total`` into len(weights) non-negative parts, roughly by weight."""
    noisy = [max(w * rng.uniform(0.6, 1.4), 0.01) for w in weights]
    s = sum(noisy)
    parts = [int(total * w / s) for w in noisy]
    for i in rng.sample(range(len(parts)), k=len(parts)):
        if sum(parts) >= total:
            break
        parts[i] += 1
    while sum(parts) < total:
        parts[rng.randrange(len(parts))] += 1
    return parts


def _lpj(l: int, p: int) -> dict[str, int]:  # noqa: E741 - the form's own letter
    return {"l": l, "p": p, "j": l + p}


def make_form(
    rng: random.Random,
    tps: str,
    form: str,
    *,
    operator: str,
    election: str = ELECTION,
    voters_rng: random.Random | None = None,
) -> dict[str, Any]:
    """One consistent form: every rule R1–R10 holds.

    The voter section (DPT, users, ballots, disabled voters) is drawn from ``voters_rng`` when
    given: pass a generator seeded by the TPS code to give every form of one TPS the same
    voters, as on real paper (so R13 stays quiet); votes always come from ``rng``.
    """
    vr = voters_rng or rng
    dpt_l, dpt_p = vr.randint(95, 160), vr.randint(95, 160)
    u_l = int(dpt_l * vr.uniform(0.7, 0.9))
    u_p = int(dpt_p * vr.uniform(0.7, 0.9))
    b_l, b_p = vr.choice((0, 0, 0, 1, 2)), vr.choice((0, 0, 1, 2))
    k_l, k_p = vr.choice((0, 0, 0, 1)), vr.choice((0, 0, 0, 1))
    tot_l, tot_p = u_l + b_l + k_l, u_p + b_p + k_p
    total = tot_l + tot_p
    invalid = int(total * rng.uniform(0.005, 0.04))
    valid = total - invalid
    received = expected_ballots(dpt_l + dpt_p)
    damaged = vr.choice((0, 0, 0, 1, 2))
    out: dict[str, Any] = {
        "election": election,
        "form": form,
        "tps": tps,
        "pemilih_dpt": _lpj(dpt_l, dpt_p),
        "pengguna_dpt": _lpj(u_l, u_p),
        "pengguna_dptb": _lpj(b_l, b_p),
        "pengguna_dpk": _lpj(k_l, k_p),
        "pengguna_total": _lpj(tot_l, tot_p),
        "surat_suara": {
            "diterima": received,
            "digunakan": total,
            "rusak": damaged,
            "sisa": received - total - damaged,
        },
        "disabilitas": _lpj(min(vr.choice((0, 0, 1, 2)), tot_l), min(vr.choice((0, 1)), tot_p)),
    }
    if form == "PPWP":
        votes = _split(rng, valid, list(PPWP_WEIGHTS.values()))
        out["suara"] = dict(zip(PPWP_WEIGHTS, votes, strict=True))
    elif form == "DPD":
        weights = [rng.uniform(0.2, 3.0) for _ in range(DPD_CANDIDATES)]
        votes = _split(rng, valid, weights)
        out["suara"] = {str(i + 1): v for i, v in enumerate(votes)}
    else:
        weights = [rng.uniform(0.1, 3.0) for _ in PARTIES]
        totals = _split(rng, valid, weights)
        partai: dict[str, Any] = {}
        for no, t in zip(PARTIES, totals, strict=True):
            party_only = int(t * rng.uniform(0.1, 0.4))
            caleg = _split(rng, t - party_only, [1.0 / (i + 1) for i in range(CALEG_PER_PARTY)])
            partai[no] = {
                "partai": party_only,
                "caleg": {str(i + 1): v for i, v in enumerate(caleg)},
                "jumlah": t,
            }
        out["partai"] = partai
    out.update(
        {
            "sah": valid,
            "tidak_sah": invalid,
            "total": total,
            "scans": [],
            "operator": operator,
            "note": "",
        }
    )
    return out


def add_mistake(rng: random.Random, form: dict[str, Any], kind: str | None = None) -> str:
    """Put one paper mistake into ``form`` (in place); returns which kind."""
    kind = kind or rng.choice(MISTAKES)
    if kind == "hundred":  # 72 written as 172
        if "suara" in form:
            k = rng.choice(sorted(form["suara"]))
            form["suara"][k] = (form["suara"][k] + 100) % 1000
        else:
            p = form["partai"][rng.choice(sorted(form["partai"]))]
            p["jumlah"] = (p["jumlah"] + 100) % 1000
    elif kind == "swap_sah":
        form["sah"], form["tidak_sah"] = form["tidak_sah"], form["sah"]
        if form["sah"] == form["tidak_sah"]:
            form["sah"] += 1
    elif kind == "lpj":
        form["pemilih_dpt"]["j"] += 1
    elif kind == "total":
        form["total"] += rng.choice((-2, -1, 1, 2))
    elif kind == "users":
        form["pengguna_total"]["l"] += 1
    elif kind == "ballots":
        form["surat_suara"]["sisa"] += rng.choice((1, 2, 3))
    else:
        raise ValueError(f"unknown mistake {kind!r}")
    return kind


def tps_codes(master: Master | None, region: str, rng: random.Random) -> Iterator[str]:
    """An endless supply of distinct TPS codes: real ones under ``region`` if a master is given."""
    if master is not None:
        codes = list(master.tps_codes(region))
        if not codes:
            raise ValueError(f"the master has no TPS under region {region!r}")
        rng.shuffle(codes)
        yield from codes
        raise ValueError(f"region {region!r} has only {len(codes)} TPS")
    n = rng.randrange(5_000_000)  # another seed, other codes: separate runs do not collide
    while True:
        kab, kec, desa, t = n // 200_000 + 1, n // 20_000 % 10 + 1, n // 20 % 1000 + 1, n % 20 + 1
        yield f"99{kab:02d}{kec:02d}{desa:04d}{t:03d}"
        n += 1


def forms_for(region_tps: str) -> tuple[str, ...]:
    """The ballot types a TPS (or a region code) has (``rules.form_allowed``: DKI Jakarta, 31,
    has no DPRD kabupaten/kota)."""
    return tuple(f for f in FORMS if form_allowed(f, region_tps))


def _slots(count: int, forms: tuple[str, ...], codes: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(TPS, form) for ``count`` forms: every form of ``forms`` the TPS has, TPS after TPS."""
    made = 0
    while made < count:
        tps = next(codes)
        for form in forms:
            if made >= count:
                return
            if not form_allowed(form, tps):
                continue
            made += 1
            yield tps, form


def _typed(
    rng: random.Random, seed: int, tps: str, form: str, operator: str, mistake_rate: float
) -> dict[str, Any]:
    """One form as an operator types it: every form of a TPS with the same voters, and a
    share ``mistake_rate`` with one paper mistake."""
    f = make_form(rng, tps, form, operator=operator, voters_rng=random.Random(f"{seed}/{tps}"))
    if rng.random() < mistake_rate:
        add_mistake(rng, f)
    return f


def laptop_forms(
    count: int,
    *,
    seed: int = 2024,
    master: Master | None = None,
    region: str = "31",
    forms: tuple[str, ...] = ("PPWP",),
    mistake_rate: float = 0.15,
    operator: str = "Operator 01",
) -> Iterator[dict[str, Any]]:
    """``count`` forms typed on one laptop, one at a time (``c1client generate``): for the same
    seed, the forms ``room_workload`` gives a room of one laptop, without holding them all."""
    rng = random.Random(seed)
    for tps, form in _slots(count, forms, tps_codes(master, region, rng)):
        yield _typed(rng, seed, tps, form, operator, mistake_rate)


def room_workload(
    count: int,
    laptops: int,
    *,
    seed: int = 2024,
    master: Master | None = None,
    region: str = "31",
    forms: tuple[str, ...] = ("PPWP",),
    mistake_rate: float = 0.15,
    double_rate: float = 0.1,
    conflicts: int = 1,
) -> list[list[dict[str, Any]]]:
    """Forms for a room of ``laptops``: ``count`` distinct forms, plus double entries.

    A share ``double_rate`` of forms is typed again on another laptop (identical numbers, so the
    hub shows them *verified*); ``conflicts`` of those doubles carry a typing slip instead, so
    the hub shows them in *conflict*. Returns one list of JSON entries per laptop.
    """
    if laptops < 1:
        raise ValueError("a room needs at least one laptop")
    rng = random.Random(seed)
    per: list[list[dict[str, Any]]] = [[] for _ in range(laptops)]
    conflicts_left = conflicts if laptops > 1 else 0
    for made, (tps, form) in enumerate(_slots(count, forms, tps_codes(master, region, rng))):
        i = made % laptops
        f = _typed(rng, seed, tps, form, f"Operator {i + 1:02d}", mistake_rate)
        per[i].append(f)
        if laptops > 1 and (conflicts_left > 0 or rng.random() < double_rate):
            j = (i + 1 + rng.randrange(laptops - 1)) % laptops
            twin = _copy(f)
            twin["operator"] = f"Operator {j + 1:02d}"
            if conflicts_left > 0:
                add_mistake(rng, twin, "hundred")
                conflicts_left -= 1
            per[j].append(twin)
    return per


def _copy(form: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in form.items():
        out[k] = _copy(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v
    return out
