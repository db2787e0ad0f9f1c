"""Scans in an S3-compatible object store, content-addressed by SHA-256 (DESIGN §3 "Scans",
§4b; docs/scaling.md "Scans").

The same contract as the filesystem blob store: a blob exists under its hash only once all of
its bytes are there and hash to that name, and an upload never holds more than one part in
memory. Each blob is stored once under ``PREFIX/blobs/ab/abcdef...`` (``Cache-Control:
immutable``: a CDN may keep it forever, since the bytes under a hash never change).

How the hash is checked before the blob is visible:

- **up to one part** (``part_size``, 8 MiB: every scanned page): the bytes are hashed while
  they arrive; at ``commit`` the hash is compared with the expected one, then ONE ``PutObject``
  to the final key carries ``x-amz-checksum-sha256`` = that hash, so the server refuses
  (BadDigest) bytes that do not hash to it, and ``If-None-Match: *`` so a blob already held is
  never rewritten. S3 makes an object visible only when its PUT completes.
- **larger** (a long PDF): a multipart upload to a temporary key ``PREFIX/tmp/<random>``, each
  part with its own SHA-256 checked by the server; at ``commit``, once the whole hash is the
  expected one, the upload is completed, copied server-side to the final key, and the temporary
  object deleted. An abandoned upload leaves only a temporary key or an incomplete multipart
  upload, never a wrong blob: ``clean_tmp`` removes them (and a bucket lifecycle rule on
  ``tmp/`` should too: docs/scaling.md).

``S3BlobStore`` is the async twin of ``hub.shared.blobs.BlobStore`` (``has``, ``info``,
``writer(expect)`` -> ``write``/``commit``/``abort``, ``put_chunks``, ``iter_chunks``,
``verify``, ``clean_tmp``); ``AsyncBlobStore`` is that interface as a Protocol. Page-kind
checks (JPEG/PNG/PDF by content) are the filesystem store's and are to be shared with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import re
import secrets
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError

from .errors import SharedError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE = 20 * 1024 * 1024  # a scanned page is 0.3-3 MB; a multi-page PDF more
PART_SIZE = 8 * 1024 * 1024  # S3's smallest part is 5 MiB
CHUNK = 64 * 1024
THREAD_HASH = 256 * 1024  # chunks this large are hashed on a worker thread
BLOBS, TMP = "blobs/", "tmp/"
IMMUTABLE = "public, max-age=31536000, immutable"
_HASH_RE = re.compile(r"[0-9a-f]{64}")


class S3BlobError(SharedError):
    """A scan that cannot be stored or read in the object store. ``code``: not_a_hash,
    hash_mismatch, too_large, empty, not_found, closed, unavailable, no_bucket."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class BlobInfo:
    hash: str  # SHA-256, 64 lowercase hex
    size: int
    new: bool = True  # False when the store already held it


class AsyncBlobWriter(Protocol):
    async def write(self, chunk: bytes) -> None: ...
    async def commit(self) -> BlobInfo: ...
    async def abort(self) -> None: ...


class AsyncBlobStore(Protocol):
    """A content-addressed blob store reached over the network."""

    async def has(self, digest: str) -> bool: ...
    async def info(self, digest: str) -> BlobInfo | None: ...
    def writer(self, expect: str | None = None) -> AsyncBlobWriter: ...
    def iter_chunks(self, digest: str) -> AsyncIterator[bytes]: ...


_session: AioSession | None = None


async def _warm_session() -> AioSession:
    """One botocore session per process, its S3 model loaded in a thread: parsing the JSON
    models takes ~100 ms of CPU that would otherwise block the event loop at every ``open``."""
    global _session
    if _session is not None:
        return _session
    session = get_session()
    loader = session.get_component("data_loader")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def warm() -> None:
        try:
            loader.load_service_model("s3", "service-2")
            loader.load_service_model("s3", "endpoint-rule-set-1")
            loader.load_data("endpoints")
            loader.load_data("partitions")
        except BaseException as exc:  # pragma: no cover - a broken botocore install
            loop.call_soon_threadsafe(done.set_exception, exc)
        else:
            loop.call_soon_threadsafe(done.set_result, None)

    threading.Thread(target=warm, name="c1hub-s3-models", daemon=True).start()
    await done
    _session = session
    return session


def is_hash(text: str) -> bool:
    return bool(_HASH_RE.fullmatch(text))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _check_hash(digest: str) -> None:
    if not is_hash(digest):
        raise S3BlobError(
            "not_a_hash", f"{digest!r} is not a SHA-256 hash (64 lowercase hex characters)"
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# answers that say "not now" rather than "no": the server is busy, failing or mid-change
_TRANSIENT_CODES = frozenset(
    ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "ServiceUnavailable",
     "InternalError", "RequestLimitExceeded", "TooManyRequests")
)  # fmt: skip


def _transient(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return _code(exc) in _TRANSIENT_CODES or int(status or 0) >= 500


def _unavailable(exc: ClientError) -> S3BlobError:
    return S3BlobError("unavailable", f"the object store cannot answer now: {exc}")


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str


def parse_url(url: str) -> S3Location:
    """``s3://bucket[/prefix]?endpoint=http://host:port&region=...`` (credentials come from
    the usual AWS environment variables or files, never from the URL)."""
    u = urlsplit(url)
    if u.scheme != "s3" or not u.hostname:
        raise ValueError(f"expected s3://bucket[/prefix]?endpoint=..., not {url!r}")
    q = parse_qs(u.query)
    prefix = u.path.strip("/")
    return S3Location(
        bucket=u.hostname,
        prefix=prefix + "/" if prefix else "",
        endpoint=q.get("endpoint", [None])[0],
        region=q.get("region", ["us-east-1"])[0],
    )


class S3BlobWriter:
    """One blob being uploaded: ``write`` chunks, then ``commit`` (or ``abort``). As an async
    context manager, leaving the block without ``commit`` aborts."""

    def __init__(self, store: S3BlobStore, expect: str | None, max_size: int):
        if expect is not None:
            _check_hash(expect)
        self.store = store
        self.expect = expect
        self.max_size = max_size
        self.size = 0
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._tmp: str | None = None  # temporary key, once a multipart upload has started
        self._upload: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._open = True

    async def write(self, chunk: bytes) -> None:
        if not self._open:
            raise S3BlobError("closed", "this blob is already committed or aborted")
        self.size += len(chunk)
        if self.size > self.max_size:
            await self.abort()
            raise S3BlobError(
                "too_large", f"the scan is over the limit of {self.max_size} bytes per page"
            )
        if len(chunk) >= THREAD_HASH:  # ~2.5 ms of CPU per MiB: off the event loop
            await asyncio.to_thread(self._hash.update, chunk)
        else:
            self._hash.update(chunk)
        self._buf += chunk
        if len(self._buf) >= self.store.part_size:
            await self._flush_part()

    async def _flush_part(self) -> None:
        s = self.store
        if self._upload is None:
            self._tmp = f"{s.loc.prefix}{TMP}{secrets.token_hex(12)}"
            r = await s.call(
                s.client.create_multipart_upload,
                Bucket=s.loc.bucket, Key=self._tmp, ChecksumAlgorithm="SHA256",
            )  # fmt: skip
            self._upload = r["UploadId"]
        part = bytes(self._buf)
        self._buf.clear()
        n = len(self._parts) + 1
        checksum = _b64(await asyncio.to_thread(lambda: hashlib.sha256(part).digest()))
        r = await s.call(
            s.client.upload_part,
            Bucket=s.loc.bucket, Key=self._tmp, UploadId=self._upload, PartNumber=n,
            Body=part, ChecksumSHA256=checksum,
        )  # fmt: skip
        self._parts.append({"ETag": r["ETag"], "PartNumber": n, "ChecksumSHA256": checksum})

    async def commit(self) -> BlobInfo:
        """Check the whole blob's hash, then make it visible under that hash."""
        if not self._open:
            raise S3BlobError("closed", "this blob is already committed or aborted")
        if self.size == 0:
            await self.abort()
            raise S3BlobError("empty", "the file is empty")
        digest = self._hash.hexdigest()
        if self.expect is not None and digest != self.expect:
            await self.abort()
            raise S3BlobError(
                "hash_mismatch",
                f"the bytes received hash to {digest[:12]}…, not the expected {self.expect[:12]}…",
            )
        s = self.store
        key = s.key(digest)
        try:
            if self._upload is None:
                new = await s.put_final(key, bytes(self._buf), self._hash.digest())
            else:
                new = await self._finish_multipart(key)
        except BaseException:
            await self.abort()
            raise
        self._open = False
        self._buf.clear()
        log.debug("stored blob %s (%d bytes) in the object store", digest, self.size)
        return BlobInfo(digest, self.size, new)

    async def _finish_multipart(self, key: str) -> bool:
        s = self.store
        if self._buf:
            await self._flush_part()
        assert self._tmp is not None and self._upload is not None
        await s.call(
            s.client.complete_multipart_upload,
            Bucket=s.loc.bucket, Key=self._tmp, UploadId=self._upload,
            MultipartUpload={"Parts": self._parts},
        )  # fmt: skip
        self._upload = None  # complete: only the temporary object is left to remove
        if await s.has_key(key):
            new = False
        else:
            await s.call(
                s.client.copy_object,
                Bucket=s.loc.bucket, Key=key, CopySource={"Bucket": s.loc.bucket, "Key": self._tmp},
                CacheControl=IMMUTABLE, MetadataDirective="REPLACE",
            )  # fmt: skip
            new = True
        await s.call(s.client.delete_object, Bucket=s.loc.bucket, Key=self._tmp)
        self._tmp = None
        return new

    async def abort(self) -> None:
        """Drop the upload: nothing of it stays (best effort; ``clean_tmp`` finishes)."""
        self._open = False
        self._buf.clear()
        s = self.store
        with contextlib.suppress(S3BlobError):
            if self._upload is not None:
                await s.call(
                    s.client.abort_multipart_upload,
                    Bucket=s.loc.bucket, Key=self._tmp, UploadId=self._upload,
                )  # fmt: skip
            elif self._tmp is not None:
                await s.call(s.client.delete_object, Bucket=s.loc.bucket, Key=self._tmp)
        self._upload = self._tmp = None

    async def __aenter__(self) -> S3BlobWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._open:
            await self.abort()


class S3BlobStore:
    """Blobs in one bucket (under an optional prefix). ``async with S3BlobStore.connect(url)
    as store:`` ... ; or ``open``/``close`` around a long-lived service."""

    def __init__(
        self,
        client: S3Client,
        loc: S3Location,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        part_size: int = PART_SIZE,
    ):
        self.client = client
        self.loc = loc
        self.max_size = max_size
        self.part_size = part_size
        self._exit: contextlib.AsyncExitStack | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        part_size: int = PART_SIZE,
    ) -> S3BlobStore:
        loc = parse_url(url)
        stack = contextlib.AsyncExitStack()
        config = AioConfig(
            connect_timeout=10, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # No SigV4 hash of the body on the event loop (~25 ms per 8 MiB part): every upload
            # carries its SHA-256 in x-amz-checksum-sha256, a signed header the server checks
            # the body against, which guards the bytes as well.
            s3={"payload_signing_enabled": False},
        )  # fmt: skip
        session = await _warm_session()
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=loc.endpoint,
                region_name=loc.region,
                config=config,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
            )
        )
        store = cls(client, loc, max_size=max_size, part_size=part_size)
        store._exit = stack
        return store

    async def close(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
            self._exit = None

    async def __aenter__(self) -> S3BlobStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, fn: Any, **kwargs: Any) -> Any:
        """One S3 call; transport failures become ``S3BlobError("unavailable")``."""
        try:
            return await fn(**kwargs)
        except ClientError:
            raise
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise S3BlobError("unavailable", f"the object store cannot be reached: {exc}") from exc

    def key(self, digest: str) -> str:
        _check_hash(digest)
        return f"{self.loc.prefix}{BLOBS}{digest[:2]}/{digest}"

    async def ensure_bucket(self) -> bool:
        """Create the bucket if the server says it does not exist; True when this call created
        it. Another receiver creating it at the same moment is no error: a create refused for
        any reason is followed by a second look, and a bucket there now is used. A server that
        answers throttling or 5xx (or ``OperationAborted``, a conflicting create still under
        way, with the bucket not there yet) is ``S3BlobError("unavailable")``, as when it
        cannot be reached. A bucket that cannot be created (its name taken, no right to
        create) is ``S3BlobError("no_bucket")``; any other refusal to say whether it exists
        (credentials allowed objects only) is the server's ``ClientError``."""
        try:
            await self.call(self.client.head_bucket, Bucket=self.loc.bucket)
            return False
        except ClientError as exc:
            if _transient(exc):
                raise _unavailable(exc) from exc
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        try:
            await self.call(self.client.create_bucket, Bucket=self.loc.bucket)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":
                return False
            if _transient(exc):
                raise _unavailable(exc) from exc
            try:  # another receiver's create may have won the race: is it there now?
                await self.call(self.client.head_bucket, Bucket=self.loc.bucket)
                return False
            except ClientError as again:
                if _transient(again) or _code(exc) == "OperationAborted":
                    raise _unavailable(exc) from exc
            raise S3BlobError(
                "no_bucket",
                f"bucket {self.loc.bucket!r} does not exist and cannot be created ({exc})",
            ) from exc
        return True

    async def put_final(self, key: str, body: bytes, digest: bytes) -> bool:
        """One PUT under the final key, refused by the server unless the bytes hash to
        ``digest``; False when the blob was already there (never rewritten)."""
        try:
            await self.call(
                self.client.put_object,
                Bucket=self.loc.bucket, Key=key, Body=body, ChecksumSHA256=_b64(digest),
                IfNoneMatch="*", CacheControl=IMMUTABLE,
            )  # fmt: skip
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                return False
            if _code(exc) in ("BadDigest", "XAmzContentSHA256Mismatch"):
                raise S3BlobError("hash_mismatch", "the object store received other bytes") from exc
            raise
        return True

    async def has_key(self, key: str) -> bool:
        try:
            await self.call(self.client.head_object, Bucket=self.loc.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def has(self, digest: str) -> bool:
        return is_hash(digest) and await self.has_key(self.key(digest))

    async def info(self, digest: str) -> BlobInfo | None:
        try:
            r = await self.call(
                self.client.head_object, Bucket=self.loc.bucket, Key=self.key(digest)
            )
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return BlobInfo(digest, int(r["ContentLength"]), new=False)

    def writer(self, expect: str | None = None) -> S3BlobWriter:
        """A writer for one new blob; with ``expect``, commit refuses any other hash."""
        return S3BlobWriter(self, expect, self.max_size)

    async def put_chunks(
        self, chunks: AsyncIterable[bytes] | Iterable[bytes], expect: str | None = None
    ) -> BlobInfo:
        async with self.writer(expect) as w:
            if isinstance(chunks, AsyncIterable):
                async for c in chunks:
                    await w.write(c)
            else:
                for c in chunks:
                    await w.write(c)
            return await w.commit()

    async def adopt(self, path: Path, digest: str) -> bool:
        """Store the whole, already verified blob in the file at ``path`` under ``digest``
        (hashed again on the way; the server checks it too), then remove the file. False when
        the blob was already held."""
        f = await asyncio.to_thread(open, path, "rb")
        try:
            async with self.writer(digest) as w:
                while chunk := await asyncio.to_thread(f.read, self.part_size):
                    await w.write(chunk)
                info = await w.commit()
        finally:
            f.close()
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return info.new

    async def iter_chunks(
        self, digest: str, size: int = CHUNK, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The held blob's bytes ``start`` .. ``end`` (inclusive; None: to its end), streamed
        (S3BlobError ``not_found`` if it is not held)."""
        extra = (
            {"Range": f"bytes={start}-{'' if end is None else end}"}
            if start or end is not None
            else {}
        )
        try:
            r = await self.call(
                self.client.get_object, Bucket=self.loc.bucket, Key=self.key(digest), **extra
            )
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise S3BlobError("not_found", f"no scan {digest[:12]}… here") from None
            raise
        async with r["Body"] as body:
            async for chunk in body.iter_chunks(size):
                yield chunk

    async def verify(self, digest: str) -> bool:
        """Re-hash a held blob: does it still match its name?"""
        h = hashlib.sha256()
        async for chunk in self.iter_chunks(digest):
            h.update(chunk)
        return h.hexdigest() == digest

    async def clean_tmp(self) -> int:
        """Remove what abandoned uploads left (temporary objects, incomplete multipart
        uploads); returns how many."""
        n = 0
        prefix = self.loc.prefix + TMP
        ups = await self.call(
            self.client.list_multipart_uploads, Bucket=self.loc.bucket, Prefix=prefix
        )
        for u in ups.get("Uploads", []):
            await self.call(
                self.client.abort_multipart_upload,
                Bucket=self.loc.bucket, Key=u["Key"], UploadId=u["UploadId"],
            )  # fmt: skip
            n += 1
        objs = await self.call(self.client.list_objects_v2, Bucket=self.loc.bucket, Prefix=prefix)
        for o in objs.get("Contents", []):
            await self.call(self.client.delete_object, Bucket=self.loc.bucket, Key=o["Key"])
            n += 1
        return n
