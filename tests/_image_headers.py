"""Smallest JPEG, WebP and GIF files whose headers carry a given size (PNGs come from make_png)."""

from __future__ import annotations

import struct


def jpeg(width: int, height: int) -> bytes:
    """SOI, a JFIF APP0 segment, a baseline SOF0 segment with the size, EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = (
        b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    )
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp(width: int, height: int) -> bytes:
    """A RIFF/WEBP file with a VP8X chunk giving the canvas size."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00\x00\x00\x00"
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def gif(width: int, height: int) -> bytes:
    """A GIF89a header with the logical screen size, and the trailer."""
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00;"
