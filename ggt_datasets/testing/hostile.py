"""Hostile image files for tests: headers that lie about their size, bodies cut or corrupted.

Example:
    >>> from ggt_datasets.testing.hostile import png_declaring
    >>> data = png_declaring(20000, 20000)   # ~100 bytes that claim 400 megapixels
    >>> len(data) < 200
    True
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, body_rows: int = 1) -> bytes:
    """A PNG whose IHDR declares width x height (8-bit RGB) over a tiny body; every CRC is valid."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(3 * min(width, 64)) for _ in range(body_rows))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is rewritten to declare width x height."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    pos = 2
    while pos + 4 <= len(data):
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):  # SOF0/1/2: precision, height, width
            data[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        pos += 2 + length
    raise RuntimeError("no SOF marker in the JPEG Pillow wrote")


def corrupt_middle(data: bytes, fraction: float = 0.5, span: int = 64) -> bytes:
    """`data` with `span` bytes in the middle overwritten (the end marker stays intact)."""
    start = int(len(data) * fraction)
    out = bytearray(data)
    out[start : start + span] = bytes((b ^ 0x5A) for b in out[start : start + span])
    return bytes(out)
