"""What calls cost, as data, and the client's usage ledger.

Prices are credits (1 credit = 1 USD) per call, by model and route, from
MaxAPI's published table; override them with :meth:`PriceTable.with_prices`.
Estimates err high where the price is not published: ``mix`` and "the key's
configured order" (``route_mode=None``) are priced at the model's dearest
route, and ``n`` images are priced as ``n`` calls. Failed calls cost nothing.

Credits are added as whole nano-credits (:func:`nano_credits`), so twelve calls
at 0.04 make 0.48, not ``0.4799999999999999``; the public fields stay ``float``,
each the float nearest to the exact sum. A model without a price has no
estimate (``None``), never 0: the ledger counts its calls in ``unpriced_calls``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .catalog import lookup_model

__all__ = ["CREDIT_DECIMALS", "PRICES", "PriceTable", "RouteUsage", "Usage", "format_credits"]


#: Nano-credits per credit: sums of credits are exact in these integer units.
NANO = 1_000_000_000


#: Decimals shown wherever credits are printed: the published prices are in thousandths.
CREDIT_DECIMALS = 3


def format_credits(credits: float) -> str:
    """Credits as people read them, always with :data:`CREDIT_DECIMALS` decimals: ``0.040``."""
    return f"{credits:.{CREDIT_DECIMALS}f}"


def nano_credits(credits: float) -> int:
    """Credits as a whole number of nano-credits: 0.024 is exactly 24_000_000.

    Exact for any amount written with at most nine decimals and below a million
    credits (the float's error is then far below half a nano-credit).
    """
    return round(credits * NANO)


@attrs.frozen
class PriceTable:
    """Credits per call, keyed by ``(model id, route mode)``."""

    prices: Mapping[tuple[str, str], float]
    # per_call's answers: every successful call asks, with one of a few (model, route) pairs.
    _memo: dict[tuple[str, str | None], float | None] = attrs.field(
        factory=dict, init=False, repr=False, eq=False, hash=False
    )

    def per_call(self, model: str, route_mode: str | None) -> float | None:
        """The price of one call, or ``None`` for a model without prices."""
        key = (model, route_mode)
        try:
            return self._memo[key]
        except KeyError:
            price = self._memo[key] = self._lookup(model, route_mode)
            return price

    def _lookup(self, model: str, route_mode: str | None) -> float | None:
        spec = lookup_model(model)
        model_id = spec.id if spec is not None else model
        if route_mode is not None:
            price = self.prices.get((model_id, route_mode))
            if price is not None:
                return price
        routes = [p for (m, _), p in self.prices.items() if m == model_id]
        return max(routes) if routes else None

    def estimate(self, model: str, route_mode: str | None, n: int = 1) -> float | None:
        """Estimated credits for a call producing ``n`` images (``None``: unknown model)."""
        price = self.per_call(model, route_mode)
        if price is None or n <= 1:
            return price
        return nano_credits(price) * n / NANO  # 3 x 0.024 is 0.072, not 0.07200000000000001

    def with_prices(self, prices: Mapping[tuple[str, str], float]) -> PriceTable:
        """A copy with some prices replaced or added."""
        return PriceTable({**self.prices, **prices})


#: Today's published prices (credits per call).
PRICES = PriceTable(
    {
        ("google/gemini-2.5-flash-image", "official"): 0.04,
        ("google/gemini-2.5-flash-image", "official-cheap"): 0.024,
    }
)


@attrs.define
class RouteUsage:
    """Calls, images and estimated credits for one route (``"default"``: the key's order).

    ``credits`` sums the calls with a known price; ``unpriced_calls`` counts the
    calls of models without one, whose credits are unknown and not in ``credits``.
    """

    calls: int = 0
    images: int = 0
    credits: float = 0.0
    unpriced_calls: int = 0


@attrs.define
class Usage:
    """The client's running ledger of successful calls (failed calls cost nothing).

    ``credits`` sums the estimates of the calls with a known price, added
    exactly; ``unpriced_calls`` counts the calls of models without a price (give
    the client one with ``prices=``), whose credits are not in ``credits``.
    """

    calls: int = 0
    images: int = 0
    credits: float = 0.0
    failed_calls: int = 0
    by_route: dict[str, RouteUsage] = attrs.field(factory=dict)
    unpriced_calls: int = 0

    def record(self, route_mode: str | None, images: int, credits: float | None) -> None:
        """Count one successful call; ``credits=None``: its model has no price."""
        key = route_mode or "default"
        route = self.by_route.get(key)
        if route is None:
            route = self.by_route[key] = RouteUsage()
        self.calls += 1
        self.images += images
        route.calls += 1
        route.images += images
        if credits is None:
            self.unpriced_calls += 1
            route.unpriced_calls += 1
        else:  # in nano-credits (inlined: this runs on every call); int / int is the nearest float
            nanos = round(credits * NANO)
            self.credits = (round(self.credits * NANO) + nanos) / NANO
            route.credits = (round(route.credits * NANO) + nanos) / NANO
