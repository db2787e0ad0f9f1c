"""Checking an origin's log link by link, without I/O (DESIGN §2.3, §2.4).

A record follows the one before it when its seq is the next one and its ``prev`` is the hash
of that record (``link``). Walking a whole log (``Walk``, one origin; ``Logs``, records of
many origins each in seq order, as in a bundle) also checks each record on its own: the bytes
decode as a record, the signature verifies, the body is a valid entry, the origin is the log's,
and, when the caller knows where the record was stored, that it names that seq.

Problems are reported, never raised: a verifier wants every problem, not the first. The codes
are stable (``c1client verify`` prints them, a bundle check can too):

==================  =============================================================
``seq_gap``         the seq is not the next one: ``after`` is the seq before it
``bad_record``      the bytes are not a record (``detail`` says why)
``wrong_origin``    signed by another origin than the log's (``origin``)
``seq_mismatch``    stored under one seq, the record says another (``said``)
``bad_signature``   the signature does not verify
``chain``           ``prev`` is not the hash of the record ``after``
``bad_body``        the body is not a valid entry (``detail`` says why)
==================  =============================================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from . import entry, record
from .errors import ProtocolError

GAP = "seq_gap"
BAD_RECORD = "bad_record"
WRONG_ORIGIN = "wrong_origin"
SEQ_MISMATCH = "seq_mismatch"
BAD_SIGNATURE = "bad_signature"
CHAIN = "chain"
BAD_BODY = "bad_body"


def link(after: int, after_hash: bytes, seq: int, prev: bytes) -> str | None:
    """Does a record (``seq``, ``prev``) follow the record ``after`` whose hash is
    ``after_hash`` (0 and ``record.GENESIS`` for the start of a log)? None if it does; GAP if
    its seq is not ``after + 1``; CHAIN if its ``prev`` is another hash."""
    if seq != after + 1:
        return GAP
    if prev != after_hash:
        return CHAIN
    return None


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one record; ``seq`` is where it was stored (when the caller said), else
    the seq it names (None when the bytes are not a record)."""

    code: str
    seq: int | None
    after: int | None = None  # GAP, CHAIN: the seq of the record before
    said: int | None = None  # SEQ_MISMATCH: the seq the record names
    origin: bytes | None = None  # WRONG_ORIGIN: who signed it
    detail: str = ""  # BAD_RECORD, BAD_BODY: the decoding error

    @property
    def missing(self) -> tuple[int, int] | None:
        """GAP: the first and last seq missing before this record (None if it went back)."""
        if self.code != GAP or self.after is None or self.seq is None or self.seq <= self.after:
            return None
        return self.after + 1, self.seq - 1


@dataclass(frozen=True, slots=True)
class Checked:
    record: record.Record | None  # None when the bytes are not a record
    body: dict[str, Any] | None  # the decoded entry, when it is one (and bodies are checked)
    findings: list[Finding] = field(default_factory=list)


class Walk:
    """One origin's log, fed record by record in seq order.

    ``origin`` is the log's key (None: the first record's origin). ``after``/``after_hash``
    start the walk after a known record (default: the start of the log). With ``bodies``,
    each body is decoded as an entry too.
    """

    def __init__(
        self,
        origin: bytes | None = None,
        *,
        after: int = 0,
        after_hash: bytes = record.GENESIS,
        bodies: bool = True,
    ):
        self.origin = origin
        self.seq = after
        self.hash = after_hash
        self.bodies = bodies

    def check(self, raw: bytes, at: int | None = None) -> Checked:
        """Check ``raw``, stored as seq ``at`` if the caller knows (a laptop's own log); then
        it becomes the record the next one must follow.

        Stored seqs are the positions: a gap is a missing position (and then ``prev`` is not
        compared with the record before the gap), an undecodable record still takes its place.
        Without ``at``, the record's own seq is its position, and bytes that are not a record
        are skipped (the walk stays where it was).
        """
        out: list[Finding] = []
        try:
            rec: record.Record | None = record.decode(raw)
        except ProtocolError as exc:
            rec, error = None, exc.message
        if rec is None:
            if at is None:
                return Checked(None, None, [Finding(BAD_RECORD, None, detail=error)])
            if link(self.seq, self.hash, at, self.hash) == GAP:
                out.append(Finding(GAP, at, after=self.seq))
            out.append(Finding(BAD_RECORD, at, detail=error))
            self.seq, self.hash = at, hashlib.sha256(raw).digest()
            return Checked(None, None, out)
        pos = rec.seq if at is None else at
        follows = link(self.seq, self.hash, pos, rec.prev)
        if follows == GAP:
            out.append(Finding(GAP, pos, after=self.seq))
        if self.origin is None:
            self.origin = rec.origin
        elif rec.origin != self.origin:
            out.append(Finding(WRONG_ORIGIN, pos, origin=rec.origin))
        if rec.seq != pos:
            out.append(Finding(SEQ_MISMATCH, pos, said=rec.seq))
        try:
            rec.verify()
        except ProtocolError:
            out.append(Finding(BAD_SIGNATURE, pos))
        if follows == CHAIN:
            out.append(Finding(CHAIN, pos, after=self.seq))
        body = None
        if self.bodies:
            try:
                body = entry.decode_body(rec.body)
            except ProtocolError as exc:
                out.append(Finding(BAD_BODY, pos, detail=exc.message))
        self.seq, self.hash = pos, rec.hash
        return Checked(rec, body, out)


class Logs:
    """Records of many origins, each origin's in seq order (a bundle): one ``Walk`` each."""

    def __init__(self, *, bodies: bool = True):
        self.walks: dict[bytes, Walk] = {}
        self.bodies = bodies

    def check(self, raw: bytes) -> Checked:
        try:
            origin = record.decode(raw).origin
        except ProtocolError as exc:
            return Checked(None, None, [Finding(BAD_RECORD, None, detail=exc.message)])
        walk = self.walks.setdefault(origin, Walk(origin, bodies=self.bodies))
        return walk.check(raw)
