"""What calls cost, as data, and the client's usage ledger.

Prices are credits (1 credit = 1 USD) per call, by model and route, from
MaxAPI's published table; override them with :meth:`PriceTable.with_prices`.
Estimates err high where the price is not published: ``mix`` and "the key's
configured order" (``route_mode=None``) are priced at the model's dearest
route, and ``n`` images are priced as ``n`` calls. Failed calls cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ._catalog import lookup_model

__all__ = ["PRICES", "PriceTable", "RouteUsage", "Usage"]


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
        return None if price is None else price * max(1, n)

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
    """Calls, images and estimated credits for one route (``"default"``: the key's order)."""

    calls: int = 0
    images: int = 0
    credits: float = 0.0


@attrs.define
class Usage:
    """The client's running ledger of successful calls (failed calls cost nothing)."""

    calls: int = 0
    images: int = 0
    credits: float = 0.0
    failed_calls: int = 0
    by_route: dict[str, RouteUsage] = attrs.field(factory=dict)

    def record(self, route_mode: str | None, images: int, credits: float | None) -> None:
        """Count one successful call."""
        key = route_mode or "default"
        route = self.by_route.get(key)
        if route is None:
            route = self.by_route[key] = RouteUsage()
        cost = credits or 0.0
        self.calls += 1
        self.images += images
        self.credits += cost
        route.calls += 1
        route.images += images
        route.credits += cost
