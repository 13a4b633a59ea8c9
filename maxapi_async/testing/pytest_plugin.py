"""A pytest fixture, ``fake_maxapi``, that yields a running :class:`~maxapi_async.testing.FakeMaxAPI`.

Installing ``maxapi-async`` registers this plugin with pytest (a ``pytest11`` entry point
named after this module), so the fixture is available in every test suite with no setup.
Listing it explicitly also works, e.g. when plugin autoloading is off::

    pytest_plugins = ["maxapi_async.testing.pytest_plugin"]

The fake runs on an event loop of its own, in a background thread, so the fixture works
the same in every test style: an ``async def`` test under anyio's plugin or pytest-asyncio
(strict or auto mode), and a plain ``def`` test; with async clients and blocking ones::

    from maxapi_async.testing import FakeMaxAPI

    def test_generate(fake_maxapi: FakeMaxAPI) -> None:
        ...  # base_url=fake_maxapi.base_url, api_key=fake_maxapi.api_key

Its control methods (``fail_next``, ``add_fault``, ``fail_tasks``, ``block_next``...) and
``requests`` may be used from the test directly; ``await fake_maxapi.wait_for_requests(n)``
works on the test's loop, ``fake_maxapi.wait_for_requests_blocking(n)`` in a plain test.

Options: mark a test with ``@pytest.mark.fake_maxapi(**kwargs)`` to pass keyword arguments to
the :class:`~maxapi_async.testing.FakeMaxAPI` constructor, e.g.
``@pytest.mark.fake_maxapi(task_style="camel", complete_after_polls=1)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._server import FakeMaxAPI

__all__ = ["fake_maxapi"]

_MARKER = "fake_maxapi"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``fake_maxapi`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): keyword arguments for the fake_maxapi fixture's FakeMaxAPI",
    )


@pytest.fixture
def fake_maxapi(request: pytest.FixtureRequest) -> Iterator[FakeMaxAPI]:
    """A :class:`~maxapi_async.testing.FakeMaxAPI` running in a background thread, stopped after
    the test.

    Constructor options come from a ``@pytest.mark.fake_maxapi(...)`` marker (defaults
    otherwise; the closest marker wins: a test's own over its class's or module's).
    """
    marker = request.node.get_closest_marker(_MARKER)
    if marker is not None and marker.args:
        raise TypeError("@pytest.mark.fake_maxapi takes keyword arguments only")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    with FakeMaxAPI(**options) as fake:
        yield fake
