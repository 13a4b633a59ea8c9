"""Deadlines for a call and its attempts: :class:`Timeouts`, and what aiohttp is told.

``None`` or ``math.inf`` means no limit. A whole-call deadline is given to aiohttp with a
small margin over its connect-phase limit, so a deadline that passes before the request is
sent (waiting for a free connection, connecting) is always reported as such (``sent=False``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

from .._protocol.errors import ConfigurationError

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Timeouts"]

# The whole-call limit given to aiohttp exceeds the connect-phase limit by this
# much, so a deadline that passes before the request is sent (waiting for a free
# connection, connecting) is always reported as such (``sent=False``).
_DEADLINE_MARGIN = 0.1


def _no_limit_if_infinite(value: Any) -> Any:
    """``inf``, or an int beyond any float, means no limit: ``None``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        try:
            if math.isinf(value):
                return None
        except OverflowError:
            return None
    return value


def _limit(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0  # also nan
        or not math.isfinite(float(value))  # finite: _no_limit_if_infinite ran first
    ):
        raise ConfigurationError(
            f"Timeouts.{attribute.name} must be None or a positive number, got {value!r}"
        )


@attrs.frozen
class Timeouts:
    """Deadlines in seconds (``None``, or ``math.inf``, means no limit).

    * ``total`` (default 180): the whole call, retries and their waits
      included, and any wait for a free connection when ``max_concurrency``
      calls are already running. A per-call ``timeout=`` replaces it.
    * ``connect`` (default 10): opening one TCP/TLS connection.
    * ``read`` (default 150): the longest silence while waiting for the answer;
      a synchronous generation can take a minute before its first byte.

    Any of them passing raises :class:`~maxapi_async.APITimeoutError` (also a
    builtin :class:`TimeoutError`); its ``sent`` is ``False`` when the request
    never left, so it was neither carried out nor charged.
    """

    total: float | None = attrs.field(default=180.0, converter=_no_limit_if_infinite, validator=_limit)
    connect: float | None = attrs.field(default=10.0, converter=_no_limit_if_infinite, validator=_limit)
    read: float | None = attrs.field(default=150.0, converter=_no_limit_if_infinite, validator=_limit)

    def with_total(self, total: float | None) -> Timeouts:
        """A copy with another whole-call deadline.

        The connect and read limits stay: each attempt is cut to what is left of
        the deadline anyway, so a per-call ``timeout=`` longer than the client's
        gets the client's connect and read limits, not shorter ones.
        """
        return attrs.evolve(self, total=total)

    def _aiohttp(self, total: float | None) -> aiohttp.ClientTimeout:
        """aiohttp's limits for one attempt with ``total`` seconds left (``None``: no deadline)."""
        import aiohttp  # loaded by the first session already (see maxapi_async._transport.http)

        if total is None:
            return aiohttp.ClientTimeout(sock_connect=self.connect, sock_read=self.read)
        return aiohttp.ClientTimeout(
            total=total + _DEADLINE_MARGIN,
            connect=total,  # waiting for a pooled connection, then connecting: "not sent"
            sock_connect=total if self.connect is None else min(self.connect, total),
            sock_read=total if self.read is None else min(self.read, total),
            ceil_threshold=math.inf,  # exact deadlines: no rounding up to whole seconds
        )
