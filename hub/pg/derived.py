"""Derived state and national results in PostgreSQL, kept up to date inside the transaction
that changes what they derive from (new records, a fork, an approval or a revocation).

``refresh(con, keys)`` recomputes the state of some (election, form, TPS) keys:

1. lock their ``tps_state`` rows, in key order (missing rows are inserted first), so two
   transactions touching one key (two laptops typing the same form, on two receivers) run one
   after the other and the second reads the first's records;
2. read the *counted* records of those keys (device approved, or revoked and the record within
   its cut; never a forked device's) and derive each key's state with ``hub.protocol.state``,
   the one implementation every node uses;
3. write the new rows and move the per-kecamatan aggregates by the difference between each
   key's old and new contribution (rows updated in key order: no deadlock between refreshes).

Read side: ``results`` sums kecamatan rows under a region code (at most ~7,300 for the whole
country, ~80 per kabupaten/kota); ``status_counts`` sums them and the device counters.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.protocol import state
from hub.results import Builder, child_width, region_width

from .schema import Conn

Key = state.Key
HASH_LEN = 32

# A record counts (status, totals) when its device's forward limit covers it.
COUNTED = (
    "NOT d.forked AND (d.state = 'approved'"
    " OR (d.state = 'revoked' AND r.seq <= d.revoked_after_seq))"
)


@dataclass(slots=True)
class Row:
    """One ``tps_state`` row: what a key contributes to the results."""

    status: str = ""  # '' when no entry of the key is counted
    entries: int = 0
    live: bytes = b""
    votes: str = ""
    flags: str = ""
    users: str = ""  # distinct users totals J of the live entries, sorted, joined by ,
    scans: str = ""  # distinct scan hashes of the counted entries, sorted, joined by ,

    def contribution(self) -> tuple[dict[str, int], dict[str, int]]:
        """(votes per candidate/party, counts per status and flag) this key adds."""
        if not self.status:
            return {}, {}
        counts = {self.status: 1}
        for flag in self.flags.split(","):
            if flag:
                counts[flag] = counts.get(flag, 0) + 1
        votes: dict[str, int] = {}
        if self.status != state.CONFLICT:
            for item in self.votes.split(","):
                if item:
                    no, _, v = item.partition(":")
                    votes[no] = votes.get(no, 0) + int(v)
        return votes, counts


@dataclass(slots=True)
class _Delta:
    votes: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    counts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    scans: dict[tuple[str, str], int] = field(default_factory=dict)  # (scan, tps) -> keys
    users: set[tuple[str, str]] = field(default_factory=set)  # (election, tps) to check

    def add(self, key: Key, old: Row, new: Row) -> None:
        election, form, tps = key
        if old.users != new.users:
            self.users.add((election, tps))
        was, now = set(_split(old.scans)), set(_split(new.scans))
        for scan in was - now:
            self.scans[(scan, tps)] = self.scans.get((scan, tps), 0) - 1
        for scan in now - was:
            self.scans[(scan, tps)] = self.scans.get((scan, tps), 0) + 1
        kec = tps[:6]
        for sign, row in ((-1, old), (1, new)):
            votes, counts = row.contribution()
            for no, n in votes.items():
                k = (election, form, kec, no)
                self.votes[k] = self.votes.get(k, 0) + sign * n
            for what, n in counts.items():
                k = (election, form, kec, what)
                self.counts[k] = self.counts.get(k, 0) + sign * n


def _columns(keys: Iterable[Key]) -> tuple[list[str], list[str], list[str]]:
    e, f, t = [], [], []
    for k in keys:
        e.append(k[0])
        f.append(k[1])
        t.append(k[2])
    return e, f, t


async def keys_of_devices(con: Conn, dev_ids: Iterable[int]) -> set[Key]:
    rows = await con.fetch(
        "SELECT DISTINCT election, form, tps FROM records WHERE dev = ANY($1::bigint[])",
        list(dev_ids),
    )
    return {(r[0], r[1], r[2]) for r in rows}


@dataclass(frozen=True, slots=True)
class Fact:
    """A counted record as derived state reads it."""

    facts: state.EntryFacts  # origin: the device id, 8 bytes (distinct devices, distinct origins)
    votes: str
    flags: str


def _split(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def _rows(ordered: Iterable[Key], facts: Iterable[Fact]) -> dict[Key, Row]:
    """The ``tps_state`` row of each key from its counted records (``hub.protocol.state``)."""
    extra = {f.facts.hash: f for f in facts}
    derived = state.derive(f.facts for f in extra.values())
    counted = Counter(f.facts.key for f in extra.values())
    scans_of: dict[Key, set[str]] = {}
    for f in extra.values():
        if f.facts.scans:
            scans_of.setdefault(f.facts.key, set()).update(f.facts.scans)
    out: dict[Key, Row] = {}
    for key in ordered:
        s = derived.get(key)
        if s is None:
            out[key] = Row()
            continue
        votes = "" if s.status == state.CONFLICT else extra[s.live[0]].votes
        flags = ",".join(x for h in s.live for x in extra[h].flags.split(",") if x)
        users = ",".join(map(str, sorted({extra[h].facts.users_total_j for h in s.live})))
        scans = ",".join(sorted(scans_of.get(key, ())))
        out[key] = Row(s.status, counted[key], b"".join(s.live), votes, flags, users, scans)
    return out


async def refresh(
    con: Conn, keys: Iterable[Key], fresh: Mapping[Key, list[Fact]] | None = None
) -> int:
    """Recompute the state of ``keys`` and move the results by the difference; returns how
    many keys changed. Call inside the transaction that changed their records or devices.

    ``fresh``: this transaction's own new counted records, by key. A key with no
    ``tps_state`` row has no counted record committed (every transaction that makes a record
    count writes its key's row), so its state is derived from ``fresh`` alone and its row
    inserted whole: the common case (the first entry of a TPS) costs one INSERT. A
    concurrent transaction with a record for the same key then waits on that row and
    recomputes from everything once this one has committed.
    """
    ordered = sorted(set(keys))
    if not ordered:
        return 0
    delta = _Delta()
    changed = 0
    if fresh:
        first = _rows(ordered, (f for k in ordered for f in fresh.get(k, ())))
        cand = [(k, r) for k, r in first.items() if r.status]
        made: set[Key] = set()
        if cand:
            made = {
                (r[0], r[1], r[2])
                for r in await con.fetch(
                    "INSERT INTO tps_state(election, form, tps, status, entries, live, votes,"
                    " flags, users, scans) SELECT * FROM unnest($1::text[], $2::text[],"
                    " $3::text[], $4::text[], $5::int[], $6::bytea[], $7::text[], $8::text[],"
                    " $9::text[], $10::text[])"
                    " ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING RETURNING election, form, tps",
                    *_columns(k for k, _ in cand),
                    *_values(r for _, r in cand),
                )
            }
        for k, r in cand:
            if k in made:
                delta.add(k, Row(), r)
        changed += len(made)
        ordered = [k for k in ordered if k not in made]
    if ordered:
        changed += await _recompute(con, ordered, delta)
    await _apply(con, "kec_votes", "kec", "no", "votes", delta.votes)
    await _apply(con, "kec_counts", "kec", "what", "n", delta.counts)
    await _apply(con, "kab_votes", "kab", "no", "votes", _by_kab(delta.votes))
    await _apply(con, "kab_counts", "kab", "what", "n", _by_kab(delta.counts))
    await _hub_rules(con, delta)
    return changed


async def _hub_rules(con: Conn, delta: _Delta) -> None:
    """Move R12 (``scan_tps``, ``r12``) and R13 (``r13``) for the scans and TPS whose keys
    changed, as ``hub.protocol.state.scan_reuse`` and ``users_mismatch`` decide them."""
    moved = sorted((k, v) for k, v in delta.scans.items() if v)
    if moved:
        await con.execute(
            "INSERT INTO scan_tps(scan, tps, n) SELECT * FROM unnest($1::text[], $2::text[],"
            " $3::int[]) ORDER BY 1, 2 ON CONFLICT (scan, tps) DO UPDATE"
            " SET n = scan_tps.n + EXCLUDED.n",
            [k[0] for k, _ in moved], [k[1] for k, _ in moved], [v for _, v in moved],
        )  # fmt: skip
        scans = sorted({k[0] for k, _ in moved})
        await con.execute("DELETE FROM scan_tps WHERE scan = ANY($1::text[]) AND n <= 0", scans)
        await con.execute("DELETE FROM r12 WHERE scan = ANY($1::text[])", scans)
        await con.execute(
            "INSERT INTO r12(scan, tps) SELECT scan, array_agg(tps ORDER BY tps) FROM scan_tps"
            " WHERE scan = ANY($1::text[]) GROUP BY scan HAVING count(*) > 1",
            scans,
        )
    if delta.users:
        keys = sorted(delta.users)
        e, t = [k[0] for k in keys], [k[1] for k in keys]
        await con.execute(
            "DELETE FROM r13 r USING unnest($1::text[], $2::text[]) k(e, t)"
            " WHERE r.election = k.e AND r.tps = k.t",
            e, t,
        )  # fmt: skip
        per: dict[tuple[str, str], dict[str, set[int]]] = {}
        for election, tps, form, users in await con.fetch(
            "SELECT s.election, s.tps, s.form, s.users FROM tps_state s"
            " JOIN unnest($1::text[], $2::text[]) k(e, t) ON s.election = k.e AND s.tps = k.t"
            " WHERE s.users <> ''",
            e, t,
        ):  # fmt: skip
            forms = per.setdefault((election, tps), {})
            forms.setdefault(form, set()).update(int(x) for x in _split(users))
        bad = [
            (k, {f: sorted(v) for f, v in sorted(forms.items())})
            for k, forms in sorted(per.items())
            if len(forms) > 1 and len({u for v in forms.values() for u in v}) > 1
        ]
        if bad:
            await con.execute(
                "INSERT INTO r13(election, tps, forms) SELECT * FROM unnest($1::text[],"
                " $2::text[], $3::jsonb[])",
                [k[0] for k, _ in bad], [k[1] for k, _ in bad],
                [json.dumps(f) for _, f in bad],
            )  # fmt: skip


def _values(rows: Iterable[Row]) -> list[list[Any]]:
    cols: list[list[Any]] = [[], [], [], [], [], [], []]
    for r in rows:
        for i, v in enumerate((r.status, r.entries, r.live, r.votes, r.flags, r.users, r.scans)):
            cols[i].append(v)
    return cols


async def _recompute(con: Conn, ordered: list[Key], delta: _Delta) -> int:
    """Lock the keys' rows (creating missing ones), read all their counted records, derive,
    write what changed."""
    e, f, t = _columns(ordered)
    await con.execute(
        "INSERT INTO tps_state(election, form, tps)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ORDER BY 1, 2, 3"
        " ON CONFLICT DO NOTHING",
        e, f, t,
    )  # fmt: skip
    old: dict[Key, Row] = {}
    for r in await con.fetch(
        "SELECT s.election, s.form, s.tps, s.status, s.entries, s.live, s.votes, s.flags,"
        " s.users, s.scans"
        " FROM tps_state s JOIN unnest($1::text[], $2::text[], $3::text[]) k(e, f, t)"
        " ON s.election = k.e AND s.form = k.f AND s.tps = k.t"
        " ORDER BY s.election, s.form, s.tps FOR UPDATE OF s",
        e, f, t,
    ):  # fmt: skip
        old[(r[0], r[1], r[2])] = Row(r[3], r[4], bytes(r[5]), r[6], r[7], r[8], r[9])
    facts = [
        Fact(
            state.EntryFacts(
                bytes(r[3]), int(r[4]).to_bytes(8, "big"), (r[0], r[1], r[2]), bytes(r[5]),
                bytes(r[6]) if r[6] is not None else None, r[9], tuple(_split(r[10])),
            ),
            r[7], r[8],
        )
        for r in await con.fetch(
            "SELECT r.election, r.form, r.tps, r.hash, r.dev, r.numbers, r.supersedes, r.votes,"
            " r.flags, r.users_j, r.scans FROM records r JOIN devices d ON d.id = r.dev"
            " JOIN unnest($1::text[], $2::text[], $3::text[]) k(e, f, t)"
            " ON r.election = k.e AND r.form = k.f AND r.tps = k.t"
            f" WHERE {COUNTED}",
            e, f, t,
        )
    ]  # fmt: skip
    changed = [(k, row) for k, row in _rows(ordered, facts).items() if row != old.get(k, Row())]
    for k, row in changed:
        delta.add(k, old.get(k, Row()), row)
    if changed:
        await con.execute(
            "UPDATE tps_state s SET status = u.s, entries = u.n, live = u.l, votes = u.v,"
            " flags = u.fl, users = u.us, scans = u.sc FROM unnest($1::text[], $2::text[],"
            " $3::text[], $4::text[], $5::int[], $6::bytea[], $7::text[], $8::text[],"
            " $9::text[], $10::text[]) u(e, f, t, s, n, l, v, fl, us, sc)"
            " WHERE s.election = u.e AND s.form = u.f AND s.tps = u.t",
            *_columns(k for k, _ in changed), *_values(row for _, row in changed),
        )  # fmt: skip
    return len(changed)


def _by_kab(
    d: Mapping[tuple[str, str, str, str], int],
) -> dict[tuple[str, str, str, str], int]:
    """Kecamatan deltas summed per kabupaten/kota."""
    out: dict[tuple[str, str, str, str], int] = {}
    for (election, form, kec, k), v in d.items():
        key = (election, form, kec[:4], k)
        out[key] = out.get(key, 0) + v
    return out


async def _apply(
    con: Conn,
    table: str,
    region: str,
    col: str,
    value: str,
    d: Mapping[tuple[str, str, str, str], int],
) -> None:
    items = sorted((k, v) for k, v in d.items() if v)
    if not items:
        return
    cols: list[list[Any]] = [[], [], [], [], []]
    for k, v in items:
        for i, x in enumerate((*k, v)):
            cols[i].append(x)
    await con.execute(
        f"INSERT INTO {table}(election, form, {region}, {col}, {value})"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])"
        f" ORDER BY 1, 2, 3, 4 ON CONFLICT (election, form, {region}, {col})"
        f" DO UPDATE SET {value} = {table}.{value} + EXCLUDED.{value}",
        *cols,
    )


# -- read side --------------------------------------------------------------------------------


async def results(
    con: Conn, election: str, level: str = "national", code: str = ""
) -> dict[str, Any]:
    """National results under one region (``hub.results``: the shape both stores give): the
    country and a province summed from the kabupaten/kota rows under ``code`` (~514 areas for
    the country), a kabupaten/kota or a kecamatan from its kecamatan rows."""
    n = region_width(level, code)
    width = child_width(level) or n
    table, col = ("kab", "kab") if n < 4 else ("kec", "kec")
    # A range, not LIKE: it uses the (election, region) index under any collation.
    where = f"WHERE election = $1 AND {col} BETWEEN $2 AND $2 || '999999'"
    b = Builder(election, level, code)
    for form, region, no, votes in await con.fetch(
        f"SELECT form, substr({col}, 1, $3), no, sum(votes) FROM {table}_votes {where}"
        " GROUP BY 1, 2, 3",
        election, code, width,
    ):  # fmt: skip
        b.votes(form, region, no, int(votes))
    for form, region, what, cnt in await con.fetch(
        f"SELECT form, substr({col}, 1, $3), what, sum(n) FROM {table}_counts {where}"
        " GROUP BY 1, 2, 3",
        election, code, width,
    ):  # fmt: skip
        b.count(form, region, what, int(cnt))
    return b.finish()


def _num(k: str) -> tuple[int, str]:
    return (int(k), k) if k.isdigit() else (1 << 30, k)


def _flag_order(kv: tuple[str, int]) -> tuple[int, str]:
    return _num(kv[0][1:])


async def conflicts(con: Conn, limit: int = 200) -> list[dict[str, Any]]:
    rows = await con.fetch(
        "SELECT election, form, tps, live FROM tps_state WHERE status = 'conflict'"
        " ORDER BY election, form, tps LIMIT $1",
        limit,
    )
    return [
        {
            "election": r[0],
            "form": r[1],
            "tps": r[2],
            "live": [bytes(r[3][i : i + HASH_LEN]).hex() for i in range(0, len(r[3]), HASH_LEN)],
        }
        for r in rows
    ]


async def status_counts(con: Conn) -> dict[str, Any]:
    """The counts of a hub's status (the shape of ``c1hub status --json``'s entries, tps,
    tps_by_form, flags, forks and devices), from counters: no per-entry work."""
    dev = await con.fetchrow(
        "SELECT coalesce(sum(records), 0) AS total, coalesce(sum(CASE WHEN forked THEN 0"
        " WHEN state = 'approved' THEN records"
        " WHEN state = 'revoked' THEN least(records, revoked_after_seq) ELSE 0 END), 0)"
        " AS accepted FROM devices"
    )
    assert dev is not None
    by_state = dict.fromkeys(("pending", "approved", "revoked"), 0)
    for st, cnt in await con.fetch("SELECT state, count(*) FROM devices GROUP BY state"):
        by_state[st] = int(cnt)
    per_form: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(state.STATUSES, 0))
    flags: Counter[str] = Counter()
    for form, what, cnt in await con.fetch(
        "SELECT form, what, sum(n) FROM kab_counts GROUP BY form, what"
    ):
        if what in state.STATUSES:
            per_form[form][what] += int(cnt)
        elif cnt:
            flags[what] += int(cnt)
    tps = dict.fromkeys(state.STATUSES, 0)
    for c in per_form.values():
        for k, v in c.items():
            tps[k] += v
    r12 = await con.fetchval("SELECT count(*) FROM r12")
    r13 = await con.fetchval("SELECT count(*) FROM r13")
    if r12:
        flags["R12"] = int(r12)
    if r13:
        flags["R13"] = int(r13)
    forks = await con.fetchval("SELECT count(*) FROM forks")
    total, accepted = int(dev["total"]), int(dev["accepted"])
    return {
        "entries": {"accepted": accepted, "held": total - accepted, "total": total},
        "tps": tps,
        "tps_by_form": dict(sorted(per_form.items())),
        "flags": dict(sorted(flags.items(), key=_flag_order)),
        "forks": int(forks),
        "devices": by_state,
    }
