"""Recognise image bytes: their type and pixel size, from the header alone. No I/O."""

from __future__ import annotations

import struct

__all__ = ["IMAGE_TYPES", "image_size", "mime_type_from_url", "sniff_mime_type"]

#: The image types MaxAPI accepts as reference images.
IMAGE_TYPES: tuple[str, ...] = ("image/png", "image/jpeg", "image/webp", "image/gif")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sniff_mime_type(data: bytes | bytearray | memoryview) -> str | None:
    """The MIME type of PNG, JPEG, WebP or GIF bytes; ``None`` for anything else."""
    head = bytes(data[:12])
    if head.startswith(_PNG_SIGNATURE):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


_URL_MIME_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
}


def mime_type_from_url(url: str) -> str | None:
    """The image type a URL's file extension names, or ``None``."""
    path = url.split("?", 1)[0].split("#", 1)[0] if "?" in url or "#" in url else url
    dot = path.rfind(".")
    if dot < path.rfind("/") + 1:  # no dot in the last segment
        return None
    return _URL_MIME_TYPES.get(path[dot + 1 :].lower())


def image_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """``(width, height)`` read from the header, or ``None`` when it cannot be read."""
    buf = bytes(data[:64]) if not isinstance(data, bytes) else data
    try:
        kind = sniff_mime_type(buf)
        if kind == "image/png":
            if buf[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", buf[16:24])
            return (int(width), int(height))
        if kind == "image/gif":
            width, height = struct.unpack("<HH", buf[6:10])
            return (int(width), int(height))
        if kind == "image/webp":
            return _webp_size(buf)
        if kind == "image/jpeg":
            return _jpeg_size(data if isinstance(data, bytes) else bytes(data))
    except (struct.error, IndexError):
        return None
    return None


def _webp_size(buf: bytes) -> tuple[int, int] | None:
    chunk = buf[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(buf[24:27], "little")
        height = 1 + int.from_bytes(buf[27:30], "little")
        return (width, height)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", buf[26:30])
        return (width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        bits = int.from_bytes(buf[21:25], "little")
        return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return None


_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the marker segments up to the first start-of-frame, which holds the size.
    pos = 2
    end = min(len(data), 1 << 20)
    while pos + 9 < end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return (int(width), int(height))
        if length < 2:
            return None
        pos += 2 + length
    return None
