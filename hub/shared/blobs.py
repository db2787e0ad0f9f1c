"""A content-addressed store of scanned pages (JPEG, PNG, PDF), shared by laptops and hubs.

Each blob is stored once under its SHA-256 (64 lowercase hex characters), at
``ROOT/ab/abcdef...``. Writing never holds a blob in memory: bytes are streamed to a temporary
file in ``ROOT/tmp/`` while they are hashed and checked, and only when the whole blob is there
(its kind confirmed by its content, its size within the limit, its hash the expected one when
one was given) is the file fsynced and renamed into place, then the folder fsynced. A crash
leaves at most a temporary file, never a wrong or half-written blob under a hash.

The kind is decided by content, never by a file name: JPEG (``FF D8 FF`` ... ``FF D9``), PNG
(the 8-byte signature ... the ``IEND`` chunk) and PDF (``%PDF-`` ... ``%%EOF``). Checking the
end as well as the start refuses a file the scanner is still writing.

Partial files in ``tmp/`` (``*.part``: a ``BlobWriter``'s; ``*.upload``: a resumable upload)
that nothing wrote to for a given age are abandoned: ``expire_tmp`` removes them, judging by
the file's modification time (every write moves it on), so a file still being written stays.
``clean_tmp`` removes every ``*.part`` at once, only for a process that owns the folder alone.

Node-neutral: no notion of entries, laptops or HTTP. ``BlobWriter`` takes chunks (``write``)
and ``commit`` or ``abort``; a hub receiving a scan in chunks over the network uses it the same
way a laptop copies a file from the scanner's folder (``put_file``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from .errors import BlobError

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 20 * 1024 * 1024  # a scanned page is 0.3-3 MB; a multi-page PDF more
CHUNK = 64 * 1024
TMP_DIR = "tmp"
UPLOAD_SUFFIX = ".upload"  # a resumable upload in progress, kept across restarts
PART_SUFFIX = ".part"  # a blob being written by ``BlobWriter`` (one request, one copy)
PARTIAL_MAX_AGE = 7 * 24 * 3600  # seconds after its last write that a partial is abandoned
_HASH_RE = re.compile(r"[0-9a-f]{64}")

JPEG = "jpeg"
PNG = "png"
PDF = "pdf"
KINDS = (JPEG, PNG, PDF)
MEDIA_TYPES = {JPEG: "image/jpeg", PNG: "image/png", PDF: "application/pdf"}

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_TAIL = 1024  # how much of the end is kept to check the end marker


def is_hash(text: str) -> bool:
    """Is ``text`` a blob name: a SHA-256 as 64 lowercase hex characters?"""
    return bool(_HASH_RE.fullmatch(text))


def sniff(head: bytes) -> str | None:
    """The kind a blob starting with ``head`` claims to be, or None (not a page image)."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(_PNG_SIG):
        return PNG
    if head.startswith(b"%PDF-"):
        return PDF
    return None


def _complete(kind: str, tail: bytes) -> bool:
    """Does a blob of ``kind`` ending with ``tail`` end the way a whole file of it does?"""
    if kind == JPEG:
        return tail.rstrip(b"\x00\r\n").endswith(b"\xff\xd9")
    if kind == PNG:
        return tail.endswith(_PNG_END)
    return b"%%EOF" in tail[-_TAIL:]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    hash: str  # SHA-256, 64 lowercase hex
    size: int
    kind: str  # jpeg | png | pdf
    new: bool = True  # False when the store already held it

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.kind]


class BlobWriter:
    """One blob being written: ``write`` chunks, then ``commit`` (or ``abort``).

    A context manager: leaving the block without ``commit`` aborts (the temporary file goes).
    """

    def __init__(
        self, store: BlobStore, expect: str | None, max_size: int, resume: Path | None = None
    ):
        if expect is not None and not is_hash(expect):
            raise BlobError(
                "not_a_hash",
                f"{expect!r} is not a SHA-256 hash (64 lowercase hex characters)",
                f"{expect!r} bukan hash SHA-256 (64 karakter heksadesimal huruf kecil)",
            )
        self.store = store
        self.expect = expect
        self.max_size = max_size
        self.size = 0
        self.kind: str | None = None
        self._hash = hashlib.sha256()
        self._head = b""
        self._tail = b""
        self._done = False
        store.tmp.mkdir(parents=True, exist_ok=True)
        if resume is None:
            self._tmp = store.tmp / f"{secrets.token_hex(8)}{PART_SUFFIX}"
            self._f: BinaryIO | None = open(self._tmp, "xb")  # noqa: SIM115 - closed in commit/abort
            return
        self._tmp = resume
        self._f = open(resume, "a+b")  # noqa: SIM115 - closed in commit/abort
        self._f.seek(0)
        while chunk := self._f.read(CHUNK):  # what earlier requests left: checked, not rewritten
            self._take(chunk)
        self._f.seek(0, os.SEEK_END)

    def sync(self) -> None:
        """Make what was written so far durable (a resumable upload's offset)."""
        if self._f is None:
            raise BlobError("closed", "this blob is already committed or aborted")
        self._f.flush()
        os.fsync(self._f.fileno())

    def write(self, chunk: bytes) -> None:
        """Add ``chunk``: hashed, checked and written to the temporary file."""
        if self._f is None:
            raise BlobError("closed", "this blob is already committed or aborted")
        if not chunk:
            return
        self._take(chunk)
        self._f.write(chunk)

    def _take(self, chunk: bytes) -> None:
        """Size limit, kind, hash and tail of ``chunk`` (aborts on a refusal)."""
        self.size += len(chunk)
        if self.size > self.max_size:
            self.abort()
            raise BlobError(
                "too_large",
                f"the page is over the limit of {_mib(self.max_size)} per page",
                f"halaman melebihi batas {_mib(self.max_size)} per halaman",
            )
        if self.kind is None:
            self._head += chunk[: 16 - len(self._head)]
            if len(self._head) >= 8 or self.size >= 16:
                self._sniff()
        self._hash.update(chunk)
        self._tail = (self._tail + chunk[-_TAIL:])[-_TAIL:]  # never a copy of the chunk

    def _sniff(self) -> None:
        kind = sniff(self._head)
        if kind is None:
            self.abort()
            raise BlobError(
                "not_an_image",
                "the file is not a JPEG, PNG or PDF page (checked by its content, not its name)",
                "berkas bukan halaman JPEG, PNG atau PDF (diperiksa dari isinya, bukan namanya)",
            )
        self.kind = kind

    def commit(self) -> BlobInfo:
        """Check the whole blob, then make it durable under its hash. Returns what was stored."""
        return self.place(self.verify())

    def verify(self) -> BlobInfo:
        """Check the whole blob (kind, end, hash) and make the temporary file durable, without
        placing it under its hash: ``place`` does that, or the caller copies the file at
        ``temp_path`` elsewhere (an object store) and removes it. A refusal aborts."""
        if self._f is None:
            raise BlobError("closed", "this blob is already committed or aborted")
        if self.kind is None:
            if self.size == 0:
                self.abort()
                raise BlobError("empty", "the file is empty", "berkas kosong")
            self._sniff()
        assert self.kind is not None
        if not _complete(self.kind, self._tail):
            self.abort()
            raise BlobError(
                "incomplete",
                f"the {self.kind.upper()} file is cut short (still being written, or damaged)",
                f"berkas {self.kind.upper()} terpotong (masih ditulis, atau rusak)",
            )
        digest = self._hash.hexdigest()
        if self.expect is not None and digest != self.expect:
            self.abort()
            raise BlobError(
                "hash_mismatch",
                f"the bytes received hash to {digest[:12]}…, not the expected {self.expect[:12]}…",
                f"hash data yang diterima {digest[:12]}…, bukan {self.expect[:12]}…",
            )
        f, self._f = self._f, None
        try:
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        self._done = True
        return BlobInfo(digest, self.size, self.kind)

    @property
    def temp_path(self) -> Path:
        """The file written (after ``verify``: the whole, checked blob)."""
        return self._tmp

    def place(self, info: BlobInfo) -> BlobInfo:
        """Rename the verified file into place under its hash (``verify`` first)."""
        dest = self.store.path(info.hash)
        if dest.exists():
            self._tmp.unlink(missing_ok=True)
            return BlobInfo(info.hash, info.size, info.kind, new=False)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, dest)
        fsync_dir(dest.parent)
        log.debug("stored blob %s (%s, %d bytes)", info.hash, info.kind, info.size)
        return BlobInfo(info.hash, info.size, info.kind, new=True)

    def close_keep(self) -> None:
        """Close without committing and keep what was written (a resumable upload that the
        next request goes on with; ``BlobStore.resume``)."""
        if self._f is not None:
            self._f.close()
            self._f = None
        self._done = True

    def abort(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        if not self._done:
            self._tmp.unlink(missing_ok=True)
            self._done = True

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()


class BlobStore:
    """The blobs under ``root``: ``put_file``, ``writer``, ``open``, ``has``."""

    def __init__(self, root: Path, *, max_size: int = DEFAULT_MAX_SIZE):
        self.root = root
        self.tmp = root / TMP_DIR
        self.max_size = max_size

    def path(self, digest: str) -> Path:
        if not is_hash(digest):
            raise BlobError(
                "not_a_hash",
                f"{digest!r} is not a SHA-256 hash (64 lowercase hex characters)",
                f"{digest!r} bukan hash SHA-256",
            )
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return is_hash(digest) and self.path(digest).is_file()

    def writer(self, expect: str | None = None) -> BlobWriter:
        """A writer for one new blob; with ``expect``, commit refuses any other hash."""
        return BlobWriter(self, expect, self.max_size)

    def upload_path(self, digest: str) -> Path:
        """Where the partial upload of ``digest`` is kept between requests (and restarts)."""
        self.path(digest)  # checks the name
        return self.tmp / f"{digest}{UPLOAD_SUFFIX}"

    def upload_offset(self, digest: str) -> int:
        """Bytes of ``digest`` received so far by ``resume`` (0 if none)."""
        try:
            return self.upload_path(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def resume(self, digest: str) -> BlobWriter:
        """A writer that goes on with the partial upload of ``digest`` (started if none): what
        earlier requests wrote is re-read through the hash and checks first. ``sync`` after
        each piece makes the offset durable; ``commit`` makes the blob exist only if its hash
        is ``digest``; ``abort`` discards the partial upload."""
        path = self.upload_path(digest)
        self.tmp.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self, digest, self.max_size, resume=path)

    def put_chunks(self, chunks: Iterable[bytes], expect: str | None = None) -> BlobInfo:
        with self.writer(expect) as w:
            for c in chunks:
                w.write(c)
            return w.commit()

    def put_file(self, path: Path, expect: str | None = None) -> BlobInfo:
        """Store the file at ``path`` (streamed in chunks)."""
        try:
            f = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise BlobError(
                "unreadable",
                f"cannot read {path}: {exc.strerror}",
                f"{path} tidak dapat dibaca: {exc.strerror}",
            ) from None
        with f:
            return self.put_chunks(iter(lambda: f.read(CHUNK), b""), expect)

    def info(self, digest: str) -> BlobInfo | None:
        """Kind and size of a held blob (None if not held)."""
        p = self.path(digest)
        try:
            with open(p, "rb") as f:
                head = f.read(16)
                size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            return None
        kind = sniff(head)
        if kind is None:  # pragma: no cover - only a blob written by hand
            raise BlobError("damaged", f"blob {digest} is not a page image", f"blob {digest} rusak")
        return BlobInfo(digest, size, kind, new=False)

    def open(self, digest: str) -> BinaryIO:
        """The held blob for reading (BlobError ``not_found`` if it is not held)."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobError(
                "not_found", f"no scan {digest[:12]}… here", f"pindaian {digest[:12]}… tidak ada"
            ) from None

    def read(self, digest: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of a held blob from ``offset`` (a chunk to send)."""
        with self.open(digest) as f:
            f.seek(offset)
            return f.read(length)

    def iter_chunks(self, digest: str, size: int = CHUNK) -> Iterator[bytes]:
        with self.open(digest) as f:
            while chunk := f.read(size):
                yield chunk

    def verify(self, digest: str) -> bool:
        """Re-hash a held blob: does it still match its name?"""
        h = hashlib.sha256()
        for chunk in self.iter_chunks(digest):
            h.update(chunk)
        return h.hexdigest() == digest

    def clean_tmp(self) -> int:
        """Remove every ``*.part`` left by a crash; returns how many. Only for a process that
        owns the folder alone (a hub, under its lock, at start): it removes a file another
        process may be writing; ``expire_tmp`` never does."""
        n = 0
        if self.tmp.is_dir():
            for p in self.tmp.glob(f"*{PART_SUFFIX}"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    n += 1
        return n

    def stale_partials(self, max_age: float, now: float | None = None) -> list[Path]:
        """The partial files in ``tmp/`` (``*.part``, ``*.upload``) not written to for more
        than ``max_age`` seconds (by their modification time, which every write moves on)."""
        cutoff = (time.time() if now is None else now) - max_age
        out: list[Path] = []
        try:
            it = os.scandir(self.tmp)
        except FileNotFoundError:
            return out
        with it:
            for de in it:
                if not de.name.endswith((PART_SUFFIX, UPLOAD_SUFFIX)):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if de.stat(follow_symlinks=False).st_mtime < cutoff:
                        out.append(Path(de.path))
        return out

    def expire_tmp(
        self, max_age: float, now: float | None = None, keep: Container[str] = ()
    ) -> tuple[int, int]:
        """Remove the partial files of ``tmp/`` abandoned for more than ``max_age`` seconds,
        except those whose file name is in ``keep`` (uploads being extended right now). Each
        file's age is checked again just before it goes, so one written meanwhile stays.
        Returns (files, bytes) removed."""
        n = size = 0
        for p in self.stale_partials(max_age, now):
            if p.name in keep:
                continue
            got = self.expire_one(p, max_age, now)
            if got is not None:
                n, size = n + 1, size + got
        return n, size

    def expire_one(self, path: Path, max_age: float, now: float | None = None) -> int | None:
        """Remove the partial at ``path`` if it is still older than ``max_age``; its size, or
        None when it was kept (written meanwhile, or gone)."""
        cutoff = (time.time() if now is None else now) - max_age
        try:
            st = path.stat()
            if st.st_mtime >= cutoff:
                return None
            path.unlink()
        except FileNotFoundError:
            return None
        log.info("removed %s: a partial scan not written to for %.0f s", path.name,
                 (time.time() if now is None else now) - st.st_mtime)  # fmt: skip
        return st.st_size


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
