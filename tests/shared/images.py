"""Small real page files for tests: a PNG any browser renders, a minimal JPEG and PDF."""

from __future__ import annotations

import struct
import zlib


def png(width: int = 40, height: int = 30, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real RGB PNG of one colour, with a darker top-left quarter (so rotation shows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)

    dark = tuple(v // 3 for v in rgb)
    rows = b""
    for y in range(height):
        row = b"\x00"
        for x in range(width):
            row += bytes(dark if (x < width // 2 and y < height // 2) else rgb)
        rows += row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(payload: bytes = b"page") -> bytes:
    """Bytes that start and end like a JPEG file (enough for content checks)."""
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + payload + b"\xff\xd9"


def pdf(text: str = "C.Hasil") -> bytes:
    """A minimal one-page PDF."""
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 100]>>endobj\n"
        + f"% {text}\n".encode()
        + b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
