"""Which URLs the client may fetch, and which of them may carry the API key. No I/O.

Two rules, each decided here and only here:

* The key goes to the API's own origin and nowhere else. :func:`origin_of` reads an
  absolute ``http(s)`` URL's origin (scheme and host in any letter case, the default
  port made explicit, an internationalised host in its ASCII form) and refuses what has
  no safe reading (credentials in the URL, control characters, another scheme).
  :func:`on_origin` says whether a URL is on a given origin and gives the URL as it is
  to be sent; the task poller (``poll_url``) and the transport (every API request) both
  ask it, so they can never disagree.
* Assets are fetched over ``http(s)`` only, and their redirects are followed a few
  hops at most, each hop ``http(s)`` too (:func:`check_asset_url`,
  :data:`MAX_ASSET_REDIRECTS`). A ``file:``, ``ftp:`` or ``data:`` URL in an answer is
  the answer's fault: :class:`~maxapi_async.ResponseError`, at once, never retried.
"""

from __future__ import annotations

import re

from yarl import URL

from .errors import ResponseError

__all__ = [
    "MAX_ASSET_REDIRECTS",
    "Origin",
    "check_asset_url",
    "is_api_path",
    "on_origin",
    "origin_of",
    "redirect_target",
]

#: ``(scheme, host, port)``: lower-case scheme and host (IDNA-encoded), the port always set.
Origin = tuple[str, str, int]

#: Redirects an asset download follows at most (a CDN uses one or two).
MAX_ASSET_REDIRECTS = 5

_SCHEMES = ("http", "https")
# Control characters, spaces and backslashes: parsers disagree on URLs holding them.
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def _parse(url: str | URL) -> URL | None:
    if isinstance(url, URL):
        return url
    if not isinstance(url, str) or _UNSAFE.search(url):
        return None
    try:
        return URL(url)
    except (ValueError, TypeError):
        return None


def origin_of(url: str | URL) -> Origin | None:
    """The origin of an absolute ``http(s)`` URL; ``None`` for anything else.

    ``None`` also for a URL with a user name or password in it (a URL that carries its
    own credentials is not one to send ours to), or one that does not parse.
    """
    parsed = _parse(url)
    if parsed is None or not parsed.absolute:
        return None
    scheme = parsed.scheme.lower()
    host = parsed.raw_host
    if scheme not in _SCHEMES or not host or parsed.user is not None or parsed.password is not None:
        return None
    port = parsed.port
    if port is None:
        return None
    return (scheme, host.lower(), port)


def is_api_path(path: str) -> bool:
    """Whether ``path`` is a path to append to the API's base URL (``/v1/...``).

    Not a protocol-relative ``//host/...`` (another origin), nothing parsers read differently.
    """
    return path.startswith("/") and not path.startswith("//") and not _UNSAFE.search(path)


def on_origin(url: str, origin: Origin) -> str | None:
    """``url`` as it is to be sent, when it is an absolute URL on ``origin``; else ``None``."""
    parsed = _parse(url)
    if parsed is None or origin_of(parsed) != origin:
        return None
    return str(parsed)


def check_asset_url(url: object, *, request_id: str | None = None) -> URL:
    """An asset's URL, parsed, when it is one to fetch: absolute ``http(s)`` with a host.

    Anything else (``file:``, ``ftp:``, ``data:``, a relative path, junk) raises
    :class:`~maxapi_async.ResponseError` naming its scheme: the answer that gave it is
    wrong, and fetching it again would not make it right. Used for the first URL and for
    every redirect.
    """
    parsed = _parse(url) if isinstance(url, str) else None
    if parsed is not None and parsed.absolute and parsed.scheme.lower() in _SCHEMES and parsed.raw_host:
        return parsed
    scheme = parsed.scheme if parsed is not None and parsed.scheme else None
    what = f"a {scheme}: URL" if scheme else "not an absolute URL"
    raise ResponseError(
        f"the asset URL is {what}; only http and https assets are fetched", request_id=request_id
    )


def redirect_target(current: URL, location: str | None, *, request_id: str | None = None) -> URL:
    """Where an asset download's redirect points (``location`` read against ``current``),
    when it is a URL to fetch (see :func:`check_asset_url`); else :class:`ResponseError`.
    """
    if not location:
        raise ResponseError("the asset download redirects without a Location", request_id=request_id)
    parsed = _parse(location)
    try:
        target = current.join(parsed) if parsed is not None else None
    except (ValueError, TypeError):
        target = None
    if target is None:
        raise ResponseError("the asset download redirects to an unreadable URL", request_id=request_id)
    return check_asset_url(str(target), request_id=request_id)
