"""Reading entry files and saving their entries (``c1client enter``).

Input files hold C1 entries as JSON (docs/entry-format.md) in any of three shapes, told apart
by their first character and first line:

- a JSON array of objects (``[ {...}, {...} ]``), read element by element;
- JSON lines: one object per line (a single-line object is the one-line case);
- one or more pretty-printed objects one after another (a single ``.json`` file).

Files are streamed: only one entry at a time is held as text, so a 10,000-line JSONL file is
never loaded at once. Each value becomes an ``Item`` (its position and either the value or why
it is not JSON).

``enter_items`` then checks each item (``entry.parse``; flags ``rules.check``) and saves the
good ones in transactions of ``batch_size``. What is rejected at the laptop (nothing stored):
malformed data (schema errors), and R11 problems: a TPS that is not in the loaded master, or a
form type not contested in the TPS's province (DKI Jakarta has no DPRD_KABKO). Everything else
is saved, with its flags (R1–R10 describe the paper's own arithmetic, not a typing error the
laptop may refuse). A ``Saved`` is reported only after its transaction is durably committed.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from hub.protocol import entry, rules
from hub.protocol.errors import ProtocolError
from hub.shared.blobs import BlobStore

from . import scans
from .errors import StoreError
from .store import ClientStore

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_VALUE_CHARS = 4 * 1024 * 1024  # one entry is at most 64 KiB encoded; JSON text is larger
_WS = " \t\r\n"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Item:
    """One value read from an input: ``value``, or ``error`` if it could not be read."""

    source: str  # the file as given; "stdin" for "-"
    index: int  # 0-based position of the value in its file
    line: int | None  # 1-based line where the value starts
    value: Any = None
    error: str | None = None
    code: str = "bad_json"


def _with_scans(item: Item, blobs: BlobStore) -> Item:
    """``item`` with its scan file paths stored and named by hash (``client.scans``), or an
    Item with an error (code ``bad_scan``) if a file cannot be stored."""
    if item.error is not None:
        return item
    base = Path.cwd() if item.source == "stdin" else Path(item.source).parent
    try:
        return dataclasses.replace(item, value=scans.resolve(item.value, base, blobs))
    except scans.BadScanPath as exc:
        return dataclasses.replace(item, value=None, error=str(exc), code="bad_scan")


class _BadJSON(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


class _Text:
    """A text stream read in chunks, knowing the line number of any position in it."""

    def __init__(self, f: IO[str]):
        self.f = f
        self.buf = ""
        self.pos = 0
        self.eof = False
        self._line = 1  # line number at self._counted
        self._counted = 0

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        if self.pos > CHUNK:  # drop what has been consumed
            self.line_at(self.pos)
            self.buf = self.buf[self.pos :]
            self._counted -= self.pos
            self.pos = 0
        self.buf += chunk
        return True

    def line_at(self, pos: int) -> int:
        """Line number of ``pos`` (positions are asked for in increasing order)."""
        if pos > self._counted:
            self._line += self.buf.count("\n", self._counted, pos)
            self._counted = pos
        return self._line

    def peek(self) -> str:
        """The next non-whitespace character ("" at the end), skipping to it."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def first_line(self) -> str:
        """The rest of the current line (reading ahead as needed, up to a limit)."""
        while (nl := self.buf.find("\n", self.pos)) < 0:
            if len(self.buf) - self.pos > MAX_VALUE_CHARS or not self.fill():
                return self.buf[self.pos :]
        return self.buf[self.pos : nl]

    def value(self) -> Any:
        """Decode one JSON value at ``pos``, reading more as needed; raises _BadJSON."""
        while True:
            try:
                v, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if self.eof or len(self.buf) - self.pos > MAX_VALUE_CHARS:
                    line = self.line_at(exc.pos)
                    col = exc.pos - self.buf.rfind("\n", 0, exc.pos)
                    raise _BadJSON(f"{exc.msg} (line {line}, column {col})", line) from None
                self.fill()
                continue
            except (ValueError, RecursionError) as exc:
                raise _BadJSON(str(exc) or type(exc).__name__, self.line_at(self.pos)) from None
            if end >= len(self.buf) and not self.eof and self.fill():
                continue  # a number may go on in the next chunk: decode again
            self.pos = end
            return v


def read_items(path: str, stream: IO[bytes] | None = None) -> Iterator[Item]:
    """The values in the file at ``path`` (``"-"``: ``stream``, normally stdin), streamed."""
    source = "stdin" if path == "-" else path
    try:
        binary: IO[bytes] = stream if stream is not None else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        yield Item(source, 0, None, error=f"cannot open: {exc.strerror}", code="unreadable")
        return
    text = io.TextIOWrapper(binary, encoding="utf-8-sig")
    count = 0
    try:
        for item in _values(_Text(text), source):
            count += 1
            yield item
        if count == 0:
            yield Item(source, 0, None, error="no entries found", code="empty_input")
    except UnicodeDecodeError as exc:
        yield Item(source, count, None, error=f"not UTF-8 text ({exc.reason})", code="unreadable")
    finally:
        if stream is not None:
            text.detach()  # leave the caller's stream open
        else:
            text.close()


def _values(t: _Text, source: str) -> Iterator[Item]:
    c = t.peek()
    if not c:
        return
    if c == "[":
        yield from _array(t, source)
        return
    if c == "{":
        try:
            json.loads(t.first_line())
        except (ValueError, RecursionError):
            yield from _concatenated(t, source)
            return
    yield from _lines(t, source)


def _array(t: _Text, source: str) -> Iterator[Item]:
    t.pos += 1
    index = 0
    if t.peek() == "]":
        t.pos += 1
    else:
        while True:
            line = t.line_at(t.pos)
            try:
                v = t.value()
            except _BadJSON as exc:
                yield Item(source, index, exc.line, error=f"not valid JSON: {exc}")
                return
            yield Item(source, index, line, value=v)
            index += 1
            c = t.peek()
            t.pos += 1
            if c == "]":
                break
            if c != ",":
                where = t.line_at(t.pos - 1)
                yield Item(source, index, where, error="expected ',' or ']' after an entry")
                return
            t.peek()
    if t.peek():
        yield Item(source, index, t.line_at(t.pos), error="unexpected data after the closing ']'")


def _concatenated(t: _Text, source: str) -> Iterator[Item]:
    index = 0
    while t.peek():
        line = t.line_at(t.pos)
        try:
            v = t.value()
        except _BadJSON as exc:
            yield Item(source, index, exc.line, error=f"not valid JSON: {exc}")
            return
        yield Item(source, index, line, value=v)
        index += 1


def _lines(t: _Text, source: str) -> Iterator[Item]:
    number = t.line_at(t.pos)
    rest = t.buf[t.pos :]
    if not t.eof and not rest.endswith("\n"):
        rest += t.f.readline()  # complete the buffered line
    index = 0
    for n, text in enumerate(_chain_lines(rest, t.f), start=number):
        if not text.strip():
            continue
        try:
            v = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Item(source, index, n, error=f"not valid JSON: {exc.msg} (column {exc.colno})")
        except (ValueError, RecursionError) as exc:
            yield Item(source, index, n, error=f"not valid JSON: {exc}")
        else:
            yield Item(source, index, n, value=v)
        index += 1


def _chain_lines(first: str, f: IO[str]) -> Iterator[str]:
    yield from io.StringIO(first)
    yield from f


# -- checking and saving ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Saved:
    """An entry durably saved as record ``seq``."""

    seq: int
    hash: bytes
    election: str
    form: str
    tps: str
    flags: tuple[rules.Flag, ...]
    source: str
    index: int
    line: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash.hex(),
            "tps": self.tps,
            "form": self.form,
            "flags": [f.to_dict() for f in self.flags],
            "source": self.source,
            "index": self.index,
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    """An input value that was not saved, and why (``reason`` English, ``alasan`` Indonesian)."""

    source: str
    index: int
    line: int | None
    field: str | None
    code: str
    reason: str
    alasan: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "index": self.index,
            "line": self.line,
            "field": self.field,
            "code": self.code,
            "reason": self.reason,
            "reason_id": self.alasan,
        }


@dataclass(slots=True)
class Tally:
    read: int = 0
    saved: int = 0
    flagged: int = 0
    rejected: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"read": self.read, "saved": self.saved, "flagged": self.flagged,
                "rejected": self.rejected}  # fmt: skip


class Sink(Protocol):
    """Where ``enter_items`` reports: the CLI prints, tests collect."""

    def saved(self, s: Saved) -> None: ...
    def rejected(self, r: Rejected) -> None: ...
    def progress(self, t: Tally, done: bool) -> None: ...


@dataclass(slots=True)
class Collect:
    """A Sink that keeps everything (tests, small inputs)."""

    saved_items: list[Saved] = field(default_factory=list)
    rejected_items: list[Rejected] = field(default_factory=list)

    def saved(self, s: Saved) -> None:
        self.saved_items.append(s)

    def rejected(self, r: Rejected) -> None:
        self.rejected_items.append(r)

    def progress(self, t: Tally, done: bool) -> None:
        pass


_R11_CODES = {"tps": "unknown_tps", "form": "form_not_contested"}


def check_item(
    item: Item, master: rules.TpsMaster | None
) -> tuple[dict[str, Any], list[rules.Flag]] | Rejected:
    """Parse and check one input value: (parsed entry, flags) to save, or why not."""

    def reject(code: str, reason: str, alasan: str, field: str | None = None) -> Rejected:
        return Rejected(item.source, item.index, item.line, field, code, reason, alasan)

    if item.error is not None:
        return reject(item.code, item.error, _ID_READ_ERRORS.get(item.code, "") + item.error)
    try:
        parsed = entry.parse(item.value)
    except ProtocolError as exc:
        return reject(exc.code, exc.message, exc.pesan, exc.field)
    flags = rules.check(parsed, master)
    r11 = [f for f in flags if f.rule == "R11"]
    if r11:
        return reject(
            _R11_CODES.get(r11[0].field, "r11"),
            "; ".join(f.en for f in r11),
            "; ".join(f.id for f in r11),
            r11[0].field,
        )
    return parsed, flags


_ID_READ_ERRORS = {
    "bad_json": "bukan JSON yang sah: ",
    "unreadable": "tidak dapat dibaca: ",
    "empty_input": "tidak ada entri: ",
    "bad_scan": "pindaian tidak dapat dipakai: ",
}


@dataclass(frozen=True, slots=True)
class _Pending:
    item: Item
    parsed: dict[str, Any]
    flags: tuple[rules.Flag, ...]
    body: bytes


async def enter_items(
    store: ClientStore,
    items: Iterable[Item],
    *,
    master: rules.TpsMaster | None,
    clock: Callable[[], int],
    batch_size: int,
    sink: Sink,
    tally: Tally | None = None,
) -> Tally:
    """Check every item and save the good ones, ``batch_size`` per durable transaction.

    ``clock()`` gives each entry's ``entered_at`` (unix seconds). Rejections are reported as
    they are found; saves after their commit. If the store fails, StoreError says which
    entries were not saved (those already reported as saved are safe). ``tally`` (updated in
    place, also on failure) counts what was read, saved and rejected.
    """
    tally = tally if tally is not None else Tally()
    batch: list[_Pending] = []

    def drop_duplicates(saved_as: list[int | None]) -> None:
        """Refuse a form this laptop already holds with the same numbers (typed twice, or a
        file entered again after fixing its rejected entries): nothing new to sign."""
        seen: set[tuple[tuple[str, str, str], bytes, Any]] = set()
        keep = []
        for p, seq in zip(batch, saved_as, strict=True):
            mark = (entry.key(p.parsed), entry.numbers(p.parsed), p.parsed.get("supersedes"))
            if seq is None and mark not in seen:
                seen.add(mark)
                keep.append(p)
                continue
            where_en = f" as #{seq}" if seq is not None else " (earlier in this input)"
            where_id = f" sebagai #{seq}" if seq is not None else " (lebih awal di masukan ini)"
            tally.rejected += 1
            sink.rejected(
                Rejected(
                    p.item.source, p.item.index, p.item.line, None, "already_saved",
                    f"this form is already saved{where_en} with the same numbers: nothing new "
                    "to save (to correct a saved form, enter the correction with 'supersedes')",
                    f"formulir ini sudah tersimpan{where_id} dengan angka yang sama: tidak ada "
                    "yang baru (untuk mengoreksi, masukkan koreksi dengan 'supersedes')",
                )
            )  # fmt: skip
        batch[:] = keep

    async def flush() -> None:
        drop_duplicates(await store.same_entries([p.parsed for p in batch]))
        if not batch:
            return
        try:
            records = await store.append([p.body for p in batch])
        except StoreError as exc:
            first = batch[0].item
            raise StoreError(
                f"{exc.message}; entries from {first.source} #{first.index + 1} on were NOT saved",
                f"{exc.pesan}; entri mulai {first.source} #{first.index + 1} TIDAK disimpan",
                code=exc.code,
            ) from exc
        for p, rec in zip(batch, records, strict=True):
            tally.saved += 1
            tally.flagged += bool(p.flags)
            sink.saved(
                Saved(
                    rec.seq,
                    rec.hash,
                    p.parsed["election"],
                    p.parsed["form"],
                    p.parsed["tps"],
                    p.flags,
                    p.item.source,
                    p.item.index,
                    p.item.line,
                )
            )
        batch.clear()
        sink.progress(tally, False)

    blobs = scans.blob_store(store.data_dir)  # scan file paths are stored, then named by hash
    for item in items:
        tally.read += 1
        checked = check_item(_with_scans(item, blobs), master)
        if isinstance(checked, Rejected):
            tally.rejected += 1
            sink.rejected(checked)
            continue
        parsed, flags = checked
        try:
            body = entry.encode_body(parsed, clock())
        except ProtocolError as exc:  # too large once encoded
            tally.rejected += 1
            sink.rejected(
                Rejected(
                    item.source,
                    item.index,
                    item.line,
                    exc.field,
                    exc.code,
                    exc.message,
                    f"entri ditolak: {exc.message}",
                )
            )
            continue
        batch.append(_Pending(item, parsed, tuple(flags), body))
        if len(batch) >= batch_size:
            await flush()
    await flush()
    sink.progress(tally, True)
    log.info("enter: read %d, saved %d, rejected %d", tally.read, tally.saved, tally.rejected)
    return tally
