"""A tiny, dependency-free PNG encoder and sniffers for the fake MaxAPI server.

:func:`make_png` writes a real, valid PNG (8-bit RGB, no interlace, filter type 0 on every row)
of an exact size, so tests that decode what the client downloaded see the dimensions the
service would have produced. The picture is a horizontal gradient tinted by ``seed`` with a
vertical band pattern, so two images with different seeds differ byte for byte.

Encoding is cached per ``(width, height, seed)``: the first 1536x672 image costs a few
milliseconds, every later one is free. Uncached encodes of large images should run in a
worker thread (the server does this), never on the event loop.

:func:`png_size` reads the size back from the IHDR chunk; :func:`sniff_image_type` tells PNG,
JPEG, WEBP and GIF apart by their signatures.
"""

from __future__ import annotations

import functools
import struct
import zlib

from .._protocol.images import sniff_mime_type

__all__ = [
    "PNG_SIGNATURE",
    "make_png",
    "png_size",
    "sniff_image_type",
]

#: The eight bytes every PNG file starts with.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Largest side :func:`make_png` accepts (Gemini's largest preset is 6336 px).
_MAX_SIDE = 16384

#: Rows in one band of the vertical pattern.
_BAND = 32


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _tint(seed: int) -> tuple[int, int]:
    """Two channel values derived from ``seed`` (stable across runs and platforms)."""
    mixed = zlib.crc32(struct.pack(">q", seed)) & 0xFFFFFFFF
    return (mixed >> 8) & 0xFF, (mixed >> 16) & 0xFF


@functools.lru_cache(maxsize=64)
def make_png(width: int, height: int, seed: int = 0) -> bytes:
    """Encode a ``width`` x ``height`` 8-bit RGB PNG; the pattern depends on ``seed``.

    Results are cached (64 entries), so asking again for the same triple is free. Keep
    ``seed`` in a small range if you want the cache to help.

    Raises :class:`ValueError` for a side outside 1..16384.
    """
    if not (1 <= width <= _MAX_SIDE and 1 <= height <= _MAX_SIDE):
        raise ValueError(f"PNG size out of range: {width}x{height}")
    green, blue = _tint(seed)
    # One pixel row: red is a left-to-right gradient, green comes from the seed.
    base = bytearray(width * 3)
    base[0::3] = bytes((x * 255) // max(width - 1, 1) for x in range(width))
    base[1::3] = bytes((green,)) * width
    # Rows only differ by their blue channel, which changes once per band: build each
    # distinct row once and join them (all at C speed).
    rows: list[bytes] = []
    bands = (height + _BAND - 1) // _BAND
    for band in range(bands):
        row = bytearray(base)
        row[2::3] = bytes(((blue + band * 37) & 0xFF,)) * width
        line = b"\x00" + bytes(row)  # filter type 0 (None)
        rows.append(line * min(_BAND, height - band * _BAND))
    raw = b"".join(rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, truecolour RGB
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", ihdr),
            _chunk(b"IDAT", zlib.compress(raw, 6)),
            _chunk(b"IEND", b""),
        )
    )


def png_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's IHDR chunk, or ``None`` if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        return None
    return int(width), int(height)


def sniff_image_type(data: bytes) -> str | None:
    """The MIME type implied by ``data``'s signature (PNG, JPEG, WEBP, GIF), else ``None``.

    The client's own header sniffing (:func:`maxapi_async._protocol.images.sniff_mime_type`), so the fake
    and the client agree on what an image is.
    """
    return sniff_mime_type(data)
