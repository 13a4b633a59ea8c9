"""What the per-call path keeps from one call to the next gives what computing it again gives.

(Answers have no fast path: each is read by the one converter, see ``test_answers.py``.)
"""

from __future__ import annotations

import pytest

from maxapi_async import PRICES, AsyncMaxAPI, Timeouts

MODEL = "google/gemini-2.5-flash-image"


def test_prices_are_looked_up_once_per_model_and_route() -> None:
    table = PRICES.with_prices({(MODEL, "mix"): 0.03})
    for _ in range(2):
        assert table.per_call(MODEL, "mix") == 0.03
        assert table.per_call(MODEL, None) == 0.04  # the dearest route
        assert table.per_call("gemini-2.5-flash-image", "official-cheap") == 0.024
        assert table.per_call("other/model", "official") is None
    assert PRICES.per_call(MODEL, "mix") == 0.04  # the copy's memo is its own


@pytest.mark.anyio
async def test_the_first_attempt_under_the_clients_deadline_reuses_one_aiohttp_timeout() -> None:
    async with AsyncMaxAPI("k", timeout=Timeouts(total=30.0, connect=5.0, read=20.0)) as client:
        transport = client._transport
        transport._get_session()
        full = transport._timeout(30.0)
        assert transport._timeout(29.9995) is full
        assert transport._timeout(None) is full
        assert (full.total, full.connect, full.sock_connect, full.sock_read) == (30.1, 30.0, 5.0, 20.0)
        later = transport._timeout(12.5)  # a retry: what is left, exactly
        assert later is not full
        assert (later.total, later.connect, later.sock_connect, later.sock_read) == (12.6, 12.5, 5.0, 12.5)
