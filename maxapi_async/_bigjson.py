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
8 MB holds the GIL for 10 ms in one call; here the longest call is one image's decode.
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
# Past this many strings the body is not the shape this is for: a Python-level walk over
# its quotes would cost more than json.loads' scan.
_MAX_STRINGS = 512
_STRICT_BASE64 = sys.version_info >= (3, 11)  # binascii's strict_mode
_QUOTE = b'"'
_BACKSLASH = 0x5C


def _escaped(body: bytes, quote: int) -> bool:
    """Whether the quote at ``quote`` is escaped (an odd run of backslashes before it)."""
    start = quote
    while start > 0 and body[start - 1] == _BACKSLASH:
        start -= 1
    return (quote - start) % 2 == 1


def _strict_b64decode(data: memoryview) -> bytes | None:
    """The bytes ``data`` encodes when it is base64 and nothing else, else ``None``."""
    if sys.version_info < (3, 11):
        return None
    try:
        return binascii.a2b_base64(data, strict_mode=True)
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
    for _ in range(_MAX_STRINGS):
        opening = find(_QUOTE, pos)
        if opening < 0:
            break
        closing = find(_QUOTE, opening + 1)
        while closing >= 0 and _escaped(body, closing):
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
    else:
        return json.loads(body), {}
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
