"""A pytest fixture, ``fake_maxapi``, that yields a started :class:`~maxapi_async.testing.FakeMaxAPI`.

Installing ``maxapi-async`` registers this plugin with pytest (a ``pytest11`` entry point
named after this module), so the fixture is available in every test suite with no setup.
Listing it explicitly also works, e.g. when plugin autoloading is off::

    pytest_plugins = ["maxapi_async.testing.pytest_plugin"]

Tests run with anyio's pytest plugin (installed with anyio) on the asyncio backend::

    import pytest
    from maxapi_async.testing import FakeMaxAPI

    @pytest.mark.anyio
    async def test_generate(fake_maxapi: FakeMaxAPI) -> None:
        ...  # base_url=fake_maxapi.base_url, api_key=fake_maxapi.api_key

If no ``anyio_backend`` fixture is defined, anyio's default (``"asyncio"``) is used; the fake
cannot run under trio and skips such tests.

Options: mark a test with ``@pytest.mark.fake_maxapi(**kwargs)`` to pass keyword arguments to
the :class:`~maxapi_async.testing.FakeMaxAPI` constructor, e.g.
``@pytest.mark.fake_maxapi(task_style="camel", complete_after_polls=1)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
async def fake_maxapi(anyio_backend: Any, request: pytest.FixtureRequest) -> AsyncIterator[FakeMaxAPI]:
    """A started :class:`~maxapi_async.testing.FakeMaxAPI`, closed after the test.

    Constructor options come from a ``@pytest.mark.fake_maxapi(...)`` marker (defaults
    otherwise). Requires anyio's asyncio backend.
    """
    backend = anyio_backend if isinstance(anyio_backend, str) else anyio_backend[0]
    if backend != "asyncio":
        pytest.skip("FakeMaxAPI runs on aiohttp and needs the asyncio backend")
    marker = request.node.get_closest_marker(_MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    async with FakeMaxAPI(**options) as fake:
        yield fake
