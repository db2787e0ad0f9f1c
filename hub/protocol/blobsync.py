"""Scans on the wire: which blobs to send, in what pieces, and what a receiver answers
(DESIGN §3 "Scans"; docs/protocol.md "Scans"). Sans-IO: nothing here touches a file, a socket
or a clock; callers pass ``now``.

The link is the same laptop -> hub and hub -> upstream:

1. the sender asks ``POST /v1/blobs/lacking`` about a batch of hashes (at most ``MAX_ASK``);
   the receiver answers each with a state: ``lacking`` (with the ``offset`` it already holds
   durably of a partial upload), ``held``, ``upstream`` (held, and its own upstream holds it
   too) or ``unknown`` (no entry the receiver holds names it: send the entries first);
2. each lacking blob goes as ``PUT /v1/blobs/{sha256}`` requests, one chunk each, with
   ``Content-Range: bytes START-END/TOTAL`` starting at the receiver's offset. The receiver
   appends and fsyncs a chunk before it answers with the new offset; the last chunk makes the
   blob exist only once its hash is the one in the URL. A chunk whose start is not the
   receiver's offset gets 409 ``offset_mismatch`` with the receiver's ``offset``.
3. an interrupted chunk (reset, timeout) is followed by a new ``lacking`` question for that
   blob: the answer's offset is where to go on, so at most one chunk is sent twice.

``BlobSender`` decides all of it for one link: ``next_step(now)`` -> ``Ask`` / ``Send`` /
None, then ``lacking_answered``, ``chunk_answered`` or ``failed``. ``numbers_first`` is the
scheduling rule of the hub's uplink: a blob chunk goes only when the entry stream has nothing
to send (entries always first). ``content_range``, ``byte_range`` and ``check_chunk`` are the
receiver's parsing and decisions.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError
from .outbox import Wait
from .pacing import Backoff

CHUNK = 1024 * 1024  # bytes per upload request on an uncapped link
MIN_CHUNK = 16 * 1024
CHUNK_SECONDS = 0.5  # on a capped link, a chunk is about this long on the wire
MAX_ASK = 1000  # hashes in one lacking question
RECHECK_S = 10.0  # an ``unknown`` blob is asked about again after this long

LACKING = "lacking"
HELD = "held"
UPSTREAM = "upstream"
UNKNOWN = "unknown"
STATES = (LACKING, HELD, UPSTREAM, UNKNOWN)
FAILED = "failed"  # refused for its content (hash, kind, size): not sent again by this sender

# Refusals that no resend can cure: the blob itself is wrong.
FATAL = ("hash_mismatch", "not_an_image", "incomplete", "blob_too_large", "empty")

UNSATISFIABLE = "range_not_satisfiable"

_HASH_RE = re.compile(r"[0-9a-f]{64}")


class BlobRequestError(ProtocolError):
    """A blob request that is malformed (Content-Range, Range, hash list)."""

    code = "bad_range"


def is_hash(text: object) -> bool:
    return isinstance(text, str) and bool(_HASH_RE.fullmatch(text))


def chunk_size(kbps: int) -> int:
    """Bytes per upload request: ``CHUNK`` uncapped, else about ``CHUNK_SECONDS`` of the cap
    (so an entry typed meanwhile waits at most that long behind a chunk)."""
    if kbps <= 0:
        return CHUNK
    return max(MIN_CHUNK, min(CHUNK, int(kbps * 1024 * CHUNK_SECONDS)))


# -- the receiver's side ---------------------------------------------------------------------

_CONTENT_RANGE = re.compile(r"bytes (\d{1,12})-(\d{1,12})/(\d{1,12})")
_RANGE = re.compile(r"bytes=(\d{0,12})-(\d{0,12})")


def content_range(header: str | None, body_len: int | None) -> tuple[int, int]:
    """``Content-Range: bytes START-END/TOTAL`` of an upload chunk -> (start, total).
    ``body_len`` (Content-Length) must be END - START + 1."""
    m = _CONTENT_RANGE.fullmatch((header or "").strip())
    if m is None:
        raise BlobRequestError("an upload chunk needs Content-Range: bytes START-END/TOTAL")
    start, end, total = (int(x) for x in m.groups())
    if not start <= end < total:
        raise BlobRequestError(f"Content-Range bytes {start}-{end}/{total} is not a range")
    if body_len is not None and body_len != end - start + 1:
        raise BlobRequestError(
            f"the body has {body_len} bytes but Content-Range says {end - start + 1}"
        )
    return start, total


@dataclass(frozen=True, slots=True)
class ChunkVerdict:
    """What a receiver does with an upload chunk: ``ok`` (append it), else the refusal
    ``code`` (``offset_mismatch`` carries the receiver's ``offset``)."""

    ok: bool
    code: str = ""
    reason: str = ""
    offset: int = 0
    last: bool = False  # this chunk completes the blob


def check_chunk(
    *, named: bool, held: bool, offset: int, start: int, length: int, total: int, max_size: int
) -> ChunkVerdict:
    """The receiver's decision on a chunk of ``length`` bytes at ``start`` of a ``total``-byte
    blob, holding ``offset`` bytes of it durably."""
    if not named:
        return ChunkVerdict(
            False, "not_named", "no entry held here names this scan; send its entry first"
        )
    if held:
        return ChunkVerdict(False, "offset_mismatch", "this scan is already held", total)
    if total > max_size:
        return ChunkVerdict(
            False, "blob_too_large", f"a scan of {total} bytes is over the limit of {max_size}"
        )
    if start != offset:
        return ChunkVerdict(
            False, "offset_mismatch", f"send from byte {offset}, not {start}", offset
        )
    return ChunkVerdict(True, offset=start + length, last=start + length == total)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range of a ``Range: bytes=A-B`` header for a blob of ``size`` bytes, as
    (start, end inclusive); None for no header (the whole blob). BlobRequestError code
    ``range_not_satisfiable`` (416) for a range outside the blob or a form not served
    (several ranges)."""
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        raise BlobRequestError(
            "Range must be one range: bytes=A-B, bytes=A- or bytes=-N", code=UNSATISFIABLE
        )
    a, b = m.groups()
    if not a:  # the last N bytes
        n = int(b)
        if n == 0:
            raise BlobRequestError("bytes=-0 is an empty range", code=UNSATISFIABLE)
        return max(size - n, 0), size - 1
    start = int(a)
    end = min(int(b), size - 1) if b else size - 1
    if start >= size or end < start:
        raise BlobRequestError(
            f"range {header!r} is outside the scan's {size} bytes", code=UNSATISFIABLE
        )
    return start, end


def parse_ask(msg: Any) -> list[str]:
    """The hashes of a lacking question ``{"hashes": [hex, ...]}``, at most ``MAX_ASK``."""
    hashes = msg.get("hashes") if isinstance(msg, dict) else None
    if type(hashes) is not list or not all(is_hash(h) for h in hashes):
        raise BlobRequestError('a lacking question is {"hashes": [64 lowercase hex, ...]}')
    if len(hashes) > MAX_ASK:
        raise BlobRequestError(f"ask about at most {MAX_ASK} scans at a time")
    return list(dict.fromkeys(hashes))


# -- the sender's side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ask:
    """Ask the receiver which of ``hashes`` it lacks (``POST /v1/blobs/lacking``)."""

    hashes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Send:
    """Send bytes ``offset`` .. ``offset + length`` of blob ``hash`` (``total`` bytes)."""

    hash: str
    offset: int
    length: int
    total: int


@dataclass(slots=True)
class BlobSender:
    """What one sender sends over one link (see the module docstring). ``offer`` the blobs it
    may send (held here, named by an entry the receiver holds), in the order they should go;
    then loop on ``next_step``."""

    chunk: int = CHUNK
    rng: random.Random = field(default_factory=random.Random)
    state: dict[str, str] = field(default_factory=dict)  # hash -> receiver's state, or FAILED
    sizes: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)  # of lacking blobs
    errors: dict[str, str] = field(default_factory=dict)  # FAILED hash -> receiver's reason
    sent_bytes: int = 0  # chunk bytes handed out and answered
    resent_bytes: int = 0  # of those, bytes the receiver already had (after an interruption)
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=30.0))
    _ask: dict[str, None] = field(default_factory=dict)  # to ask about, in order
    _lacking: dict[str, None] = field(default_factory=dict)  # to send, in order
    _unknown_at: dict[str, float] = field(default_factory=dict)
    _out: Ask | Send | None = None
    _sent_upto: dict[str, int] = field(default_factory=dict)  # highest byte handed out + 1

    def offer(self, blobs: Iterable[tuple[str, int]]) -> None:
        """(hash, size) of blobs this sender holds and may send; new ones are asked about."""
        for h, size in blobs:
            if h not in self.state and h not in self._ask:
                self.sizes[h] = size
                self._ask[h] = None

    def recheck(self, hashes: Iterable[str]) -> None:
        """Ask again about blobs the receiver held (has its upstream got them since?)."""
        for h in hashes:
            if self.state.get(h) == HELD:
                self._ask[h] = None

    @property
    def busy(self) -> bool:
        """Something to ask or send now (regardless of backoff)."""
        return bool(self._ask or self._lacking)

    def bytes_pending(self) -> int:
        """Bytes of offered blobs the receiver does not hold yet."""
        return sum(
            self.sizes[h] - (self.offsets.get(h, 0) if self.state.get(h) == LACKING else 0)
            for h in self.sizes
            if self.state.get(h) in (None, LACKING, UNKNOWN)
        )

    def count(self, state: str) -> int:
        return sum(1 for s in self.state.values() if s == state)

    def next_step(self, now: float) -> Ask | Send | None:
        """What to do now: None when there is nothing (or when backing off)."""
        if self._out is not None:
            return self._out
        if self.backoff.waiting(now):
            return None
        for h, t in list(self._unknown_at.items()):
            if now - t >= RECHECK_S:
                del self._unknown_at[h]
                self._ask[h] = None
        if self._ask:  # asking is cheap, and tells where to resume
            self._out = Ask(tuple(list(self._ask)[:MAX_ASK]))
        elif self._lacking:
            h = next(iter(self._lacking))
            off, total = self.offsets.get(h, 0), self.sizes[h]
            self._out = Send(h, off, min(self.chunk, total - off), total)
        return self._out

    def lacking_answered(self, reply: Any, now: float) -> None:
        """The receiver's answer to the ``Ask`` handed out."""
        step = self._out
        assert isinstance(step, Ask), step
        self._out = None
        self.backoff.succeeded()
        answers = _parse_lacking(reply)
        for h in step.hashes:
            self._ask.pop(h, None)
            st, off = answers.get(h, (UNKNOWN, 0))
            self.state[h] = st
            if st == LACKING:
                self.offsets[h] = max(0, min(off, self.sizes[h] - 1))
                self._lacking[h] = None
            else:
                self._lacking.pop(h, None)
                self.offsets.pop(h, None)
            if st == UNKNOWN:
                self._unknown_at[h] = now

    def chunk_answered(self, reply: Any) -> None:
        """The receiver stored the chunk handed out (its reply: the new ``offset``,
        ``stored`` when the blob now exists there)."""
        step = self._out
        assert isinstance(step, Send), step
        self._out = None
        self.backoff.succeeded()
        self._count_sent(step)
        if isinstance(reply, dict) and reply.get("stored"):
            self.state[step.hash] = HELD
            self._lacking.pop(step.hash, None)
            self.offsets.pop(step.hash, None)
            return
        off = reply.get("offset") if isinstance(reply, dict) else None
        self.offsets[step.hash] = off if type(off) is int else step.offset + step.length

    def failed(
        self,
        code: str,
        reason: str,
        now: float,
        *,
        offset: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """The step handed out failed. ``code`` is the receiver's (``offset_mismatch`` with
        its ``offset``, ``not_named``, a content refusal in ``FATAL``) or "" for no answer
        (reset, timeout, busy): then the blob is asked about again after a backoff, and its
        offset comes from the receiver."""
        step = self._out
        self._out = None
        if isinstance(step, Send) and code == "offset_mismatch" and offset is not None:
            if offset >= step.total:
                self.state[step.hash] = HELD
                self._lacking.pop(step.hash, None)
            else:
                self.offsets[step.hash] = offset
            return
        if isinstance(step, Send) and code == "not_named":
            self.state[step.hash] = UNKNOWN
            self._lacking.pop(step.hash, None)
            self._unknown_at[step.hash] = now
            return
        if isinstance(step, Send) and code in FATAL:
            self.state[step.hash] = FAILED
            self.errors[step.hash] = f"{reason} ({code})"
            self._lacking.pop(step.hash, None)
            return
        if isinstance(step, Send):  # no answer: the receiver says where it is
            if code != "offset_mismatch":
                self._sent_upto[step.hash] = max(
                    self._sent_upto.get(step.hash, 0), step.offset + step.length
                )
                self.sent_bytes += step.length
            self._lacking.pop(step.hash, None)
            self._ask = {step.hash: None, **self._ask}
        if code != "offset_mismatch":
            self.backoff.failed(now, self.rng, retry_after)

    def _count_sent(self, step: Send) -> None:
        self.sent_bytes += step.length
        before = self._sent_upto.get(step.hash, 0)
        if before > step.offset:
            self.resent_bytes += min(before, step.offset + step.length) - step.offset
        self._sent_upto[step.hash] = max(before, step.offset + step.length)


def _parse_lacking(reply: Any) -> dict[str, tuple[str, int]]:
    """``{"blobs": [[hash, state, offset], ...]}`` -> {hash: (state, offset)}; anything the
    reply does not make sense of counts as unknown."""
    out: dict[str, tuple[str, int]] = {}
    items = reply.get("blobs") if isinstance(reply, dict) else None
    for item in items if isinstance(items, list) else []:
        if (
            isinstance(item, list)
            and len(item) == 3
            and is_hash(item[0])
            and item[1] in STATES
            and type(item[2]) is int
        ):
            out[item[0]] = (item[1], max(item[2], 0))
    return out


def lacking_reply(answers: Iterable[tuple[str, str, int]]) -> dict[str, Any]:
    """The receiver's answer: (hash, state, offset) for each hash asked about."""
    return {"blobs": [[h, st, off] for h, st, off in answers]}


def numbers_first(entry_step: object) -> bool:
    """May a blob chunk go instead of ``entry_step``, the upstream outbox's next step? Only
    when it is the outbox's idle rest (``Wait`` until a commit stores records): not during a
    round, a backoff or a pacing wait under the cap. After each chunk the outbox decides
    again, so an entry stored meanwhile waits at most one chunk; entries are always first."""
    return isinstance(entry_step, Wait) and entry_step.on_change


# -- what a node holds -----------------------------------------------------------------------


@dataclass(slots=True)
class ScanIndex:
    """The scans named by the entries a node holds, per origin in seq order: which hashes are
    named (a blob may be received only then), under which TPS, and which may go
    upstream (those of entries upstream has confirmed). Fed the entries' (dev, seq, tps,
    scans) in the order they are stored; ``seen`` counts them, so a caller can feed only the
    new ones."""

    named: dict[str, set[str]] = field(default_factory=dict)  # hash -> TPS codes
    by_dev: dict[int, list[tuple[int, tuple[str, ...]]]] = field(default_factory=dict)
    offered: dict[int, int] = field(default_factory=dict)  # dev -> how many of by_dev offered
    seen: int = 0

    def add(self, dev: int, seq: int, tps: str, scans: tuple[str, ...]) -> None:
        self.seen += 1
        if not scans:
            return
        for s in scans:
            self.named.setdefault(s, set()).add(tps)
        self.by_dev.setdefault(dev, []).append((seq, scans))

    def is_named(self, digest: str) -> bool:
        return digest in self.named

    def newly_confirmed(self, confirmed: Mapping[int, int]) -> list[str]:
        """Hashes of the entries upstream holds (``confirmed``: dev -> seq) that were not
        returned before, in order; each entry's scans are returned once."""
        out: list[str] = []
        for dev, items in self.by_dev.items():
            upto = confirmed.get(dev, 0)
            k = self.offered.get(dev, 0)
            while k < len(items) and items[k][0] <= upto:
                out.extend(items[k][1])
                k += 1
            self.offered[dev] = k
        return list(dict.fromkeys(out))


@dataclass(frozen=True, slots=True)
class HeldBlob:
    """A blob held by a node: its size and kind (jpeg, png, pdf)."""

    size: int
    kind: str


@dataclass(frozen=True, slots=True)
class ScanCounts:
    """``c1hub status`` ``scans`` (page images, not forms)."""

    expected: int  # distinct hashes named by the entries held
    held: int  # of those, held here
    missing: int  # named, not held (yet): "scan pending"
    pending_upstream: int  # held, upstream not known to hold them (0 at a root)
    bytes_pending: int  # bytes of those

    def to_dict(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "held": self.held,
            "missing": self.missing,
            "pending_upstream": self.pending_upstream,
            "bytes_pending": self.bytes_pending,
        }


@dataclass(slots=True)
class ScanTally:
    """The scans a node holds and the figures of its status, kept up to date event by event:
    an entry stored (``add``) costs its pages, a page arriving (``arrived``) the entries that
    name it, upstream taking a page (``upstream_holds``) O(1); reading the figures
    (``counts``, ``entries_pending``, ``pending``) costs nothing more than the answer. Never a
    walk of everything held. ``scan_counts`` and ``scan_pending`` define the same figures
    from scratch (the tests hold one against the other).

    ``held`` (hash -> size and kind) and ``upstream`` change only through ``arrived`` and
    ``upstream_holds``. A new tally over the same ``held``/``upstream`` (an index rebuilt) is
    consistent at once: a page counts only once an entry names it. ``root`` matters only
    when the figures are read (a root shows nothing pending upstream)."""

    root: bool  # a root has no upstream: nothing is pending upstream there
    held: dict[str, HeldBlob] = field(default_factory=dict)
    upstream: set[str] = field(default_factory=set)
    index: ScanIndex = field(default_factory=ScanIndex)
    held_named: int = 0  # named pages held here
    pend: int = 0  # of those, upstream not known to hold them
    pend_bytes: int = 0
    # entry number (order stored) -> (key, its pages not held here), in entry order
    _pending: dict[int, tuple[tuple[str, str, str], list[str]]] = field(default_factory=dict)
    _waiting: dict[str, list[int]] = field(default_factory=dict)  # page -> entries lacking it

    def _part(self, digest: str) -> tuple[int, int, int]:
        """What ``digest`` adds to (held_named, pend, pend_bytes)."""
        blob = self.held.get(digest)
        if blob is None or digest not in self.index.named:
            return 0, 0, 0
        if digest in self.upstream:
            return 1, 0, 0
        return 1, 1, blob.size

    def _count(self, part: tuple[int, int, int], sign: int) -> None:
        self.held_named += sign * part[0]
        self.pend += sign * part[1]
        self.pend_bytes += sign * part[2]

    def add(self, dev: int, seq: int, key: tuple[str, str, str], scans: tuple[str, ...]) -> None:
        """An entry stored (``key`` = election, form, TPS), in the order entries are stored."""
        n = self.index.seen
        fresh = [h for h in dict.fromkeys(scans) if h not in self.index.named]
        self.index.add(dev, seq, key[2], scans)
        for h in fresh:
            self._count(self._part(h), 1)
        lacking = [h for h in scans if h not in self.held]
        if lacking:
            self._pending[n] = (key, lacking)
            for h in dict.fromkeys(lacking):
                self._waiting.setdefault(h, []).append(n)

    def arrived(self, digest: str, size: int, kind: str = "") -> None:
        """The page ``digest`` is held here now."""
        if digest in self.held:
            return
        before = self._part(digest)
        self.held[digest] = HeldBlob(size, kind)
        self._count(before, -1)
        self._count(self._part(digest), 1)
        for n in self._waiting.pop(digest, ()):
            key, lacking = self._pending[n]
            rest = [h for h in lacking if h != digest]
            if rest:
                self._pending[n] = (key, rest)
            else:
                del self._pending[n]

    def upstream_holds(self, digest: str) -> None:
        """Upstream holds ``digest`` (its answer said so)."""
        if digest in self.upstream:
            return
        before = self._part(digest)
        self.upstream.add(digest)
        self._count(before, -1)
        self._count(self._part(digest), 1)

    def counts(self) -> ScanCounts:
        expected = len(self.index.named)
        pend, pend_bytes = (0, 0) if self.root else (self.pend, self.pend_bytes)
        return ScanCounts(expected, self.held_named, expected - self.held_named, pend, pend_bytes)

    @property
    def entries_pending(self) -> int:
        """Entries with at least one page not held here."""
        return len(self._pending)

    def pending(self, limit: int) -> list[tuple[tuple[str, str, str], list[str]]]:
        """The first ``limit`` entries (in the order stored) whose pages are not all held
        here, with the pages still to come (as ``scan_pending``)."""
        return [(k, list(m)) for k, m in itertools.islice(self._pending.values(), limit)]


def scan_counts(
    named: Iterable[str],
    held: Mapping[str, int],
    upstream: set[str] | None,
) -> ScanCounts:
    """Counts for status, from scratch (``ScanTally`` keeps them as things change);
    ``upstream`` None at a node without one (nothing pending)."""
    expected = held_n = pend = pend_bytes = 0
    for h in named:
        expected += 1
        size = held.get(h)
        if size is None:
            continue
        held_n += 1
        if upstream is not None and h not in upstream:
            pend += 1
            pend_bytes += size
    return ScanCounts(expected, held_n, expected - held_n, pend, pend_bytes)


def scan_pending(
    entries: Iterable[tuple[tuple[str, str, str], tuple[str, ...]]], held: Mapping[str, int]
) -> list[tuple[tuple[str, str, str], list[str]]]:
    """Entries (election, form, TPS key; scans) whose pages are not all held here: "scan
    pending" (never "missing": the numbers are here, the images are on their way), with the
    hashes still to come. From scratch (``ScanTally.pending`` keeps it as things change)."""
    out = []
    for key, scans in entries:
        lacking = [h for h in scans if h not in held]
        if lacking:
            out.append((key, lacking))
    return out


def eta_s(bytes_pending: int, rate_bps: float) -> float | None:
    """Seconds to send ``bytes_pending`` at ``rate_bps`` bytes/s (None when unknown)."""
    if bytes_pending == 0:
        return 0.0
    if rate_bps <= 0:
        return None
    return bytes_pending / rate_bps
