"""``c1client verify``: re-check everything the laptop's store holds, and say what is wrong in
English and Indonesian.

The log is walked with the one chain checker (``hub.protocol.chain.Walk``): the bytes decode
as a record of this laptop's key with a valid signature; the seqs are 1..N with no gap; each
``prev`` is the previous record's hash; the body is a valid entry. On top of that, the store's
own bookkeeping: the ``hash`` column is SHA-256 of the bytes; the ``election``/``form``/
``tps``/``entered_at``/``flags`` columns agree with the signed body; the head in ``meta`` is
the last entry; every receipt names an entry held here, with its hash.

Everything is read from one snapshot (a concurrent ``enter`` is not half seen), a page at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import aiosqlite

from hub.protocol import chain, record
from hub.protocol.identity import fingerprint
from hub.shared.db import Database

from .db import ENTRY_COLS, Columns, StoredEntry, entry_row, read_meta

PAGE = 500


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing ``verify`` found wrong; ``seq`` is the entry concerned (None: the store)."""

    seq: int | None
    code: str
    en: str
    id: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "code": self.code, "en": self.en, "id": self.id}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    checked: int
    last_seq: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The ``c1client verify --json`` document (docs/json-output.md)."""
        return {
            "ok": self.ok,
            "entries": self.checked,
            "last_seq": self.last_seq,
            "problems": [p.to_dict() for p in self.problems],
        }


# What ``verify`` reports: code -> (English, Indonesian) message templates. The chain codes
# are ``hub.protocol.chain``'s.
PROBLEMS: dict[str, tuple[str, str]] = {
    chain.GAP: ("entries {span} are missing", "entri {span} hilang"),
    "hash_column": (
        "the stored hash is not the SHA-256 of the stored record bytes",
        "hash tersimpan bukan SHA-256 dari data rekaman tersimpan",
    ),
    chain.BAD_RECORD: (
        "the stored bytes are not a valid record: {detail}",
        "data tersimpan bukan rekaman yang sah: {detail}",
    ),
    chain.WRONG_ORIGIN: (
        "the record was signed by another node ({node})",
        "rekaman ditandatangani node lain ({node})",
    ),
    chain.SEQ_MISMATCH: (
        "the record says seq {said} but is stored as this seq",
        "rekaman bernomor {said} tetapi tersimpan di nomor ini",
    ),
    chain.BAD_SIGNATURE: ("the signature does not verify", "tanda tangan tidak sah"),
    chain.CHAIN: (
        "the previous-entry hash does not match entry {before}",
        "hash entri sebelumnya tidak cocok dengan entri {before}",
    ),
    chain.BAD_BODY: ("the entry body is invalid: {detail}", "isi entri tidak sah: {detail}"),
    "column": (
        "the stored {col} {value!r} does not match the signed entry ({signed!r})",
        "kolom {col} tersimpan {value!r} tidak sesuai entri yang ditandatangani ({signed!r})",
    ),
    "head": (
        "the store's head says the last entry is {head}, but the last stored entry is {last}"
        " (or its hash differs)",
        "catatan kepala menyebut entri terakhir {head}, tetapi entri terakhir yang tersimpan"
        " {last} (atau hash-nya berbeda)",
    ),
    "receipt_ahead": (
        "a {kind} receipt covers this entry, but it is not held here",
        "tanda terima {kind} mencakup entri ini, tetapi entri itu tidak tersimpan di sini",
    ),
    "receipt_mismatch": (
        "a {kind} receipt names a different entry with this seq than the one held",
        "tanda terima {kind} menyebut entri bernomor ini yang berbeda dari yang tersimpan",
    ),
}


def problem(seq: int | None, code: str, **kw: Any) -> Problem:
    en, id_ = PROBLEMS[code]
    return Problem(seq, code, en.format(**kw), id_.format(**kw))


def _from_finding(f: chain.Finding) -> Problem:
    if f.code == chain.GAP:
        first, last = f.missing or (f.seq, f.seq)
        return problem(first, f.code, span=f"{first}" if first == last else f"{first}..{last}")
    if f.code == chain.WRONG_ORIGIN:
        return problem(f.seq, f.code, node=fingerprint(f.origin or b""))
    if f.code == chain.CHAIN:
        return problem(f.seq, f.code, before=f.after)
    return problem(f.seq, f.code, said=f.said, detail=f.detail)


def check_entry(walk: chain.Walk, e: StoredEntry) -> list[Problem]:
    """The problems of one stored entry, next on ``walk`` (this laptop's log)."""
    checked = walk.check(e.raw, e.seq)
    out = [_from_finding(f) for f in checked.findings]
    if e.hash != hashlib.sha256(e.raw).digest():  # after a gap, before the record's own
        gaps = sum(1 for f in checked.findings if f.code == chain.GAP)
        out.insert(gaps, problem(e.seq, "hash_column"))
    if checked.body is not None:
        stored, signed = Columns.stored(e), Columns.of(checked.body)
        for col in Columns.__slots__:
            value, want = getattr(stored, col), getattr(signed, col)
            if value != want:
                out.append(problem(e.seq, "column", col=col, value=value, signed=want))
    return out


async def verify(db: Database, origin: bytes, *, page: int = PAGE) -> VerifyReport:
    """Re-check the whole store of the laptop whose key is ``origin`` (see the module doc)."""
    async with db.reader() as conn:
        await conn.execute("BEGIN")  # one snapshot for every page
        try:
            return await _verify(conn, origin, page)
        finally:
            await conn.execute("COMMIT")


async def _verify(conn: aiosqlite.Connection, origin: bytes, page: int) -> VerifyReport:
    problems: list[Problem] = []
    walk = chain.Walk(origin)
    checked = 0
    while True:
        rows = list(
            await conn.execute_fetchall(
                f"SELECT {ENTRY_COLS} FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                (walk.seq, page),
            )
        )
        for row in rows:
            checked += 1
            problems.extend(check_entry(walk, entry_row(row)))
        if len(rows) < page:
            break
    meta = await read_meta(conn)
    head = (int(meta.get("head_seq", "0")), meta.get("head_hash", record.GENESIS.hex()))
    last = walk.seq
    if head != (last, walk.hash.hex()):
        problems.append(
            problem(last + 1 if head[0] > last else None, "head", head=head[0], last=last)
        )
    problems.extend(await _check_receipts(conn, page))
    return VerifyReport(checked, last, problems)


async def _check_receipts(conn: aiosqlite.Connection, page: int) -> list[Problem]:
    out: list[Problem] = []
    rowid = 0
    while True:
        rows = list(
            await conn.execute_fetchall(
                "SELECT r.rowid, r.kind, r.seq, r.hash, e.hash FROM receipts r"
                " LEFT JOIN entries e ON e.seq = r.seq WHERE r.rowid > ? ORDER BY r.rowid"
                " LIMIT ?",
                (rowid, page),
            )
        )
        for rid, kind, seq, rhash, ehash in rows:
            rowid = rid
            if ehash is None:
                out.append(problem(seq, "receipt_ahead", kind=kind))
            elif bytes(rhash) != bytes(ehash):
                out.append(problem(seq, "receipt_mismatch", kind=kind))
        if len(rows) < page:
            return out
