"""JSON answers that carry images inline: megabytes of base64 in a few strings. No I/O.

``json.loads`` reads every string a character at a time, looking for escapes, and the
base64 text then has to be read again to decode it. :func:`loads_with_base64` reads it
once: it cuts each long string out of the body, decodes it as strict base64 straight from
the bytes (which also proves it holds nothing but base64 characters, so nothing JSON would
unescape), parses the small rest with ``json.loads`` and puts the texts back. The JSON
value is always what ``json.loads(body)`` gives (or raises); the decoded images come
alongside, keyed by ``id()`` of their text in that value. Anything it is not sure of (an
escape in a long string, a non-UTF-8 body, a skeleton that does not come back as
expected, Python before 3.11) goes to ``json.loads`` whole, with no images decoded.

It also keeps the event loop moving when this runs in a worker thread: ``json.loads`` of
8 MB holds the GIL for 10 ms in one call; here no call takes more than half a millisecond.
"""

from __future__ import annotations

import binascii
import json
import sys
from typing import Any

__all__ = ["BIG_BODY", "loads_with_base64"]

#: Bodies from this size are worth cutting up (smaller ones go to json.loads whole).
BIG_BODY = 1024 * 1024
#: Strings from this length are cut out (a base64 image is hundreds of KB at least).
LONG_STRING = 64 * 1024
# Past this many quotes the body is not the shape this is for: a Python-level walk over
# them would cost more than json.loads' scan.
_MAX_QUOTES = 1024
_STRICT_BASE64 = sys.version_info >= (3, 11)  # binascii's strict_mode
# Base64 characters decoded per call (a multiple of 4, so only the last slice may be padded).
_DECODE_SLICE = 256 * 1024
_QUOTE = b'"'
_BACKSLASH = 0x5C
# A longer run of backslashes before a quote is not this shape either (and counting a
# hostile megabyte of them one by one must not cost seconds).
_MAX_BACKSLASHES = 32


def _backslashes_before(body: bytes, index: int) -> int:
    """The run of backslashes before ``body[index]``, counted up to ``_MAX_BACKSLASHES``."""
    start = index
    while start > 0 and index - start < _MAX_BACKSLASHES and body[start - 1] == _BACKSLASH:
        start -= 1
    return index - start


def _strict_b64decode(data: memoryview) -> bytes | None:
    """The bytes ``data`` encodes when it is base64 and nothing else, else ``None``.

    Decoded a slice at a time: each call holds the GIL, and an event loop waiting for it
    waits until the call ends (a whole image would be 4 ms).
    """
    if sys.version_info < (3, 11):
        return None
    try:
        return b"".join(
            binascii.a2b_base64(data[start : start + _DECODE_SLICE], strict_mode=True)
            for start in range(0, len(data), _DECODE_SLICE)
        )
    except binascii.Error:
        return None


def loads_with_base64(body: bytes) -> tuple[Any, dict[int, bytes]]:
    """``json.loads(body)``, and the decoded bytes of its long base64 strings by ``id()``.

    Raises what ``json.loads(body)`` raises. The mapping is empty for a small body, or
    one not shaped as expected; it is valid while the returned value is alive.
    """
    if len(body) < BIG_BODY or not _STRICT_BASE64 or json.detect_encoding(body) != "utf-8":
        return json.loads(body), {}
    view = memoryview(body)
    pieces: list[bytes] = []
    texts: list[str] = []
    images: list[bytes] = []
    find = body.find
    done = 0  # body[:done] is in pieces
    pos = 0
    quotes = 0
    while (opening := find(_QUOTE, pos)) >= 0:
        closing = find(_QUOTE, opening + 1)
        while closing >= 0:
            quotes += 1
            run = _backslashes_before(body, closing)
            if quotes > _MAX_QUOTES or run == _MAX_BACKSLASHES:
                return json.loads(body), {}  # not the shape this is for
            if run % 2 == 0:
                break  # an odd run escapes the quote, an even one is escaped backslashes
            closing = find(_QUOTE, closing + 1)
        if closing < 0:
            break  # unterminated: json.loads explains it
        if closing - opening > LONG_STRING:
            image = _strict_b64decode(view[opening + 1 : closing])
            if image is not None:  # base64 characters only: the text is the bytes as they are
                pieces += (body[done : opening + 1], b"\\u0000" + str(len(texts)).encode())
                texts.append(str(view[opening + 1 : closing], "ascii"))
                images.append(image)
                done = closing
        pos = closing + 1
    if not texts:
        return json.loads(body), {}
    pieces.append(body[done:])
    try:
        value = json.loads(b"".join(pieces))
    except (ValueError, RecursionError):
        return json.loads(body), {}  # raises the error the whole body deserves
    if not _put_back(value, texts):
        return json.loads(body), {}
    return value, {id(text): image for text, image in zip(texts, images, strict=True)}


def _put_back(value: Any, texts: list[str]) -> bool:
    """Replace each marker in ``value`` by its text; ``False`` unless each is there once."""
    markers = {"\x00" + str(i): i for i in range(len(texts))}
    seen: set[int] = set()
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if not markers.keys().isdisjoint(node):
                return False  # a marker as a key: a key was cut out, not a value
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        for key, item in items:
            if isinstance(item, str):
                index = markers.get(item)
                if index is not None:
                    if index in seen:
                        return False  # the body holds a string that looks like a marker
                    seen.add(index)
                    node[key] = texts[index]
            elif isinstance(item, (dict, list)):
                stack.append(item)
    return len(seen) == len(texts)
