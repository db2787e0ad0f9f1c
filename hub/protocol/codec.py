"""Canonical msgpack: the one encoding every signed byte in c1hub uses.

Canonical form (docs/protocol.md, "Canonical encoding"):

- only these types: non-negative and negative integers (msgpack's shortest form), UTF-8
  strings (str family), byte strings (bin family), arrays, and maps whose keys are strings;
- map keys sorted by their UTF-8 bytes, no duplicate keys;
- no floats, no nil, no booleans, no extension types.

``unpack`` accepts exactly the bytes ``pack`` produces: it decodes, re-encodes and compares, so
two different byte strings can never decode to the same value. Anything else raises
``CodecError`` — never another exception type, never a hang (sizes are bounded).
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import CodecError

MAX_MESSAGE = 8 * 1024 * 1024


def _canon(obj: Any, depth: int = 0) -> Any:
    if depth > 16:
        raise CodecError("message nested too deeply")
    t = type(obj)
    if t is int or t is str or t is bytes:
        return obj
    if t is list or t is tuple:
        return [_canon(x, depth + 1) for x in obj]
    if t is dict:
        for k in obj:
            if type(k) is not str:
                raise CodecError(f"map key {k!r} is not a string")
        return {k: _canon(obj[k], depth + 1) for k in sorted(obj, key=_key_bytes)}
    raise CodecError(f"type {t.__name__} is not allowed in a canonical message")


def _key_bytes(k: str) -> bytes:
    return k.encode("utf-8")


def pack(obj: Any) -> bytes:
    """Encode ``obj`` canonically. Raises CodecError for values outside the canonical types."""
    try:
        out: bytes = msgpack.packb(_canon(obj), use_bin_type=True)
    except (OverflowError, ValueError) as exc:
        raise CodecError(f"cannot encode: {exc}") from None
    return out


def pack_ordered(obj: Any) -> bytes:
    """Encode a value whose maps are *already* in canonical key order and whose types are
    canonical (e.g. ``entry.parse`` output): the fast path, no copying or sorting. Callers that
    cannot guarantee this must use ``pack``; a test checks both agree on such values."""
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def unpack(data: bytes, *, max_size: int = MAX_MESSAGE, canonical: bool = True) -> Any:
    """Decode bytes produced by ``pack``; raise CodecError for anything else."""
    if type(data) is not bytes:
        raise CodecError("expected bytes")
    if len(data) > max_size:
        raise CodecError(f"message is {len(data)} bytes, over the limit of {max_size}")
    if not data:
        raise CodecError("empty message")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
        )
    except msgpack.ExtraData:
        raise CodecError("trailing bytes after the message") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise CodecError(f"not valid msgpack ({detail})") from None
    if canonical and pack(obj) != data:
        raise CodecError("message is valid msgpack but not in canonical form")
    return obj
