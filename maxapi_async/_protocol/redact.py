"""Keeping the API key out of what the service sends back. No I/O.

A server may echo the key it was sent: in an error message (``Incorrect API key provided:
Bearer sk-...``), an HTML error page, a task's failure message, a request-id header, a
malformed status line. The transport passes everything it reads from the API (bodies,
headers, the text of connection errors) through the :class:`Redactor` made from the
client's key before anything else sees it, so errors, task snapshots, results, logs, hook
events, journals and the command line's output are clean by construction.

What is found, and replaced by ``[redacted]``: the key as it is (so ``Bearer <key>`` too),
and the key with its punctuation percent-encoded (``%2B``, ``%2f``), JSON-escaped (``\\/``,
``\\u002b``) or HTML-escaped (``&#43;``, ``&#x2F;``, ``&amp;``). Letters, digits and
``-._~`` are expected as they are: no URL, JSON or HTML encoder changes them. A JSON body
is decoded, redacted string by string (object keys too) and encoded again, so its structure
and its numbers stay as they were; any other body is redacted as text.

Cost: an answer that does not hold the key costs one substring search (for the key's
longest run of letters, digits and ``-._~``, which every spelling above contains); the
rest runs only for an answer that does.

A key shorter than :data:`MIN_SECRET_LENGTH` characters is not searched for: a string that
short is no secret (it turns up in ordinary words, numbers and base64 image data, which
replacing it would mangle), so it can only be a placeholder such as a test key.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from multidict import CIMultiDict

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "Redactor"]

#: What each occurrence of the key becomes.
REDACTED = "[redacted]"
#: Keys shorter than this are not searched for (see the module docstring).
MIN_SECRET_LENGTH = 8

# Characters no URL, JSON or HTML encoder escapes (RFC 3986's "unreserved").
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_JSON_SHORT = {"/": "\\/", "\\": "\\\\", '"': '\\"'}
_HTML_NAMES = {
    "&": ("amp",),
    "<": ("lt",),
    ">": ("gt",),
    '"': ("quot",),
    "'": ("apos",),
    "+": ("plus",),
    "/": ("sol",),
    "=": ("equals",),
}


def _hex(digits: str) -> str:
    """A pattern for hex ``digits`` in either case."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in digits)


def _spellings(char: str) -> str:
    """A pattern matching ``char`` as it is or, when it is punctuation, escaped as servers do."""
    if char in _UNRESERVED:
        return re.escape(char)
    forms = [re.escape(char)]
    forms.append("".join(f"%{_hex(f'{b:02x}')}" for b in char.encode("utf-8", "surrogatepass")))
    units = char.encode("utf-16-be", "surrogatepass")  # JSON's \u escapes are UTF-16 code units
    forms.append("".join("\\\\u" + _hex(units[i : i + 2].hex()) for i in range(0, len(units), 2)))
    if char in _JSON_SHORT:
        forms.append(re.escape(_JSON_SHORT[char]))
    forms.append(f"&#0*{ord(char)};")
    forms.append(f"&#[xX]0*{_hex(f'{ord(char):x}')};")
    forms.extend(f"&{name};" for name in _HTML_NAMES.get(char, ()))
    return "(?:" + "|".join(forms) + ")"


class Redactor:
    """Replaces one secret by :data:`REDACTED` in text, bytes, JSON values and headers.

    Made once per client (building it compiles a pattern); every method returns its
    argument itself when the secret is not in it. Its repr never shows the secret.
    """

    __slots__ = ("_first", "_first_bytes", "_pattern", "_rest", "_rest_bytes")

    def __init__(self, secret: str) -> None:
        self._pattern: re.Pattern[str] | None = None
        # Every spelling of the secret contains each of its unreserved runs as it is: an
        # answer without them cannot hold it. The longest is the most telling.
        runs = sorted(re.findall(r"[A-Za-z0-9._~-]+", secret), key=len, reverse=True)
        self._first = runs[0] if runs else ""
        self._rest = tuple(runs[1:])
        self._first_bytes = self._first.encode("ascii")
        self._rest_bytes = tuple(run.encode("ascii") for run in self._rest)
        if len(secret) >= MIN_SECRET_LENGTH:
            self._pattern = re.compile("".join(_spellings(char) for char in secret))

    def __repr__(self) -> str:
        return f"<Redactor {REDACTED}>"

    @property
    def active(self) -> bool:
        """False for a secret shorter than :data:`MIN_SECRET_LENGTH` (nothing is replaced)."""
        return self._pattern is not None

    # The methods below name the secret's pattern and runs only as attributes, never as
    # local variables: a frame's locals hold no part of it (see the transport's docstring).

    def text(self, text: str) -> str:
        """``text`` with every spelling of the secret replaced."""
        if self._pattern is None or self._first not in text or not all(map(text.__contains__, self._rest)):
            return text
        return self._pattern.sub(REDACTED, text)

    def value(self, obj: Any) -> Any:
        """A JSON value with the secret replaced in every string, object keys included."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {
                self.text(key) if isinstance(key, str) else key: self.value(item) for key, item in obj.items()
            }
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.value(item) for item in obj)
        return obj

    def body(self, data: bytes) -> bytes:
        """An answer's body with the secret replaced: as JSON when it is JSON, else as text."""
        if (
            self._pattern is None
            or self._first_bytes not in data
            or not all(map(data.__contains__, self._rest_bytes))
        ):
            return data
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError)
            pass
        else:
            try:
                # ASCII out: a lone surrogate escaped in the original stays an escape.
                return json.dumps(self.value(obj), separators=(",", ":")).encode("ascii")
            except (ValueError, RecursionError):
                pass
        text = data.decode("utf-8", "surrogateescape")  # any bytes, and back unchanged
        return self._pattern.sub(REDACTED, text).encode("utf-8", "surrogateescape")

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` itself, or a case-insensitive copy with the secret replaced in names and values."""
        if self._pattern is None:
            return headers
        if not any(self._first in name or self._first in value for name, value in headers.items()):
            return headers
        return CIMultiDict((self.text(name), self.text(value)) for name, value in headers.items())
