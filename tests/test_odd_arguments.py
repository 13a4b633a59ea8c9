"""No untyped error escapes: every public call, driven with odd arguments (infinities, NaN,
negatives, huge integers, lone surrogates, empty strings, wrong types, bytes, ``None``) against the
fake server, gives a result or a ``MaxAPIError``; bad input is an ``InvalidRequestError`` (or a
``ConfigurationError`` for client options) raised before any request.

The fake and the clients live on one event loop in a background thread for the whole module (a
blocking portal), so each example costs a call, not a server start.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxapi_async import (
    AsyncMaxAPI,
    ConfigurationError,
    InvalidRequestError,
    MaxAPIError,
    MaxAPIWarning,
    PollPolicy,
    ResponseError,
    RetryPolicy,
    Timeouts,
)
from maxapi_async._protocol.task_objects import parse_task
from maxapi_async.testing import FakeMaxAPI, make_png

PNG = make_png(8, 8)
SURROGATES = ["\ud800", "a\udfffb", "\udcff.png"]
NUMBERS = st.sampled_from(
    [
        0,
        -1,
        1,
        2,
        11,
        2**63,
        10**400,
        -(10**400),
        0.0,
        -0.0,
        -1.5,
        1e-300,
        0.5,
        1e300,
        math.inf,
        -math.inf,
        math.nan,
    ]
)
ODD = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.sampled_from(["", " ", "\x00", "a\r\nb", "16:9", "1K", "official", "b64_json", "mirror", "x" * 5000]),
    st.sampled_from(SURROGATES),
    st.text(max_size=6),
    st.binary(max_size=8),
    st.just(PNG),
    st.lists(st.integers(-2, 2) | st.sampled_from(SURROGATES) | st.none(), max_size=2),
    st.dictionaries(
        st.sampled_from(["text", "parts", "temperature", "imageConfig", "\ud800"]),
        st.integers()
        | st.text(max_size=3)
        | st.sampled_from([*SURROGATES, math.nan, math.inf])
        | st.builds(set),
        max_size=2,
    ),
    st.builds(object),
)
TIMEOUTS = st.sampled_from([None, 5, 5.0, 0, -1, 1e-300, 1e300, 10**400, math.inf, -math.inf, math.nan]) | ODD

IMAGE_OPTIONS = [
    "model",
    "aspect_ratio",
    "resolution",
    "n",
    "route_mode",
    "asset_delivery",
    "response_format",
    "extra_body",
    "extra_headers",
]
NATIVE_OPTIONS = [
    "model",
    "aspect_ratio",
    "image_size",
    "response_modalities",
    "route_mode",
    "system_instruction",
    "generation_config",
    "safety_settings",
    "extra_body",
    "extra_headers",
]


def options(
    names: list[str], values: st.SearchStrategy[Any] = ODD, **extra: st.SearchStrategy[Any]
) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments: each of ``names`` left out or odd (drawn from ``values``)."""
    return st.fixed_dictionaries({}, optional={**dict.fromkeys(names, values), **extra})


class Harness:
    """A fake and a client on an event loop in another thread."""

    def __init__(
        self, portal: anyio.from_thread.BlockingPortal, fake: FakeMaxAPI, client: AsyncMaxAPI
    ) -> None:
        self.portal = portal
        self.fake = fake
        self.client = client

    def run(self, call: Callable[[], Awaitable[Any]]) -> BaseException | None:
        """Run ``call`` on the loop (10 s at most); return what it raised, checked to be typed."""
        before = len(self.fake.requests)

        async def guarded() -> BaseException | None:
            with anyio.move_on_after(10) as scope:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", MaxAPIWarning)
                        await call()
                except MaxAPIError as exc:
                    return exc
            if scope.cancelled_caught:
                pytest.fail("the call did not end within 10 s")
            return None

        error = self.portal.call(guarded)
        if isinstance(error, (InvalidRequestError, ConfigurationError)):
            assert len(self.fake.requests) == before, f"{error!r} came after a request was sent"
        return error


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with anyio.from_thread.start_blocking_portal() as portal:
        fake = portal.call(FakeMaxAPI)
        with portal.wrap_async_context_manager(fake):
            client = AsyncMaxAPI(
                fake.api_key,
                base_url=fake.base_url,
                retry_policy=RetryPolicy.instant(),
                poll_policy=PollPolicy.instant(),
                max_polls_per_second=10_000,
                timeout=5,
            )
            with portal.wrap_async_context_manager(client):
                yield Harness(portal, fake, client)


# -- the cases found, one by one ------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [math.inf, 10**400], ids=["inf", "huge-int"])
def test_an_infinite_timeout_means_no_limit(harness: Harness, timeout: Any) -> None:
    client = harness.client
    assert harness.run(lambda: client.images.generate("a cube", timeout=timeout)) is None
    assert harness.run(lambda: client.models.generate_content(contents="a cube", timeout=timeout)) is None
    handle = harness.portal.call(lambda: client.images.generate("a cube", wait=False))
    assert harness.run(lambda: handle.wait(timeout=timeout)) is None
    assert harness.run(lambda: client.images.generate("a cube", wait=False, timeout=timeout)) is None


@pytest.mark.parametrize("timeout", [math.nan, -1, 0, -math.inf, "5", b"5", True])
def test_a_timeout_that_is_no_duration_is_refused_naming_it(harness: Harness, timeout: Any) -> None:
    client = harness.client
    handle = harness.portal.call(lambda: client.images.generate("a cube", wait=False))
    for call in (
        lambda: client.images.generate("a cube", timeout=timeout),
        lambda: client.images.edit("make it night", [PNG], timeout=timeout),
        lambda: client.models.generate_content(contents="a cube", timeout=timeout),
        lambda: handle.wait(timeout=timeout),
    ):
        error = harness.run(call)
        assert isinstance(error, InvalidRequestError)
        assert error.argument == "timeout"


def test_infinite_client_timeouts_mean_no_limit() -> None:
    assert AsyncMaxAPI("k", timeout=math.inf).timeouts.total is None
    assert Timeouts(total=math.inf, connect=10**400).connect is None


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c: c.images.generate("a \ud800 cube"), "prompt"),
        (lambda c: c.images.generate("a cube", model="google/\udcff"), "model"),
        (lambda c: c.images.edit("a \ud800 cube", [PNG]), "prompt"),
        (lambda c: c.models.generate_content(contents="a \ud800 cube"), "contents"),
        (lambda c: c.models.generate_content(contents=["x", {"text": "\ud800"}]), "contents[1].text"),
        (
            lambda c: c.models.generate_content(contents="x", system_instruction="\ud800"),
            "system_instruction",
        ),
        (
            lambda c: c.models.generate_content(contents="x", generation_config={"temperature": math.nan}),
            "generation_config.temperature",
        ),
        (
            lambda c: c.models.generate_content(contents="x", safety_settings=[{"x": object()}]),
            "safety_settings[0].x",
        ),
        (lambda c: c.tasks.get("\ud800"), "task_id"),
    ],
)
def test_text_json_cannot_carry_is_refused_naming_the_argument(
    harness: Harness, call: Callable[[AsyncMaxAPI], Awaitable[Any]], argument: str
) -> None:
    async def run() -> None:
        await call(harness.client)

    error = harness.run(run)
    assert isinstance(error, InvalidRequestError)
    assert error.argument.startswith(argument)


def test_a_file_name_a_header_cannot_carry_is_sent_made_safe(harness: Harness, tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("POSIX file names")
    path = tmp_path / "night\n\udcff.png"  # a newline, and an undecodable byte
    path.write_bytes(PNG)
    assert harness.run(lambda: harness.client.images.edit("make it night", [path])) is None
    assert harness.fake.requests[-1].files[0].filename == "night__.png"


@pytest.mark.parametrize("key", ["sk-a\nb", "sk-\ud800", "sk-é", 42])
def test_a_key_no_header_can_carry_is_a_configuration_error_that_does_not_echo_it(key: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncMaxAPI(key)
    assert str(key) not in str(info.value)


def test_a_task_id_no_url_can_carry_is_the_answers_fault() -> None:
    answer = json.loads('{"id": "\\ud800", "status": "queued"}')  # JSON can spell a lone surrogate
    with pytest.raises(ResponseError, match="not a task id"):
        parse_task(answer, kind="generation")


# -- every public call, fuzzed ---------------------------------------------------------------------


SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(prompt=st.just("a cube") | ODD, kwargs=options(IMAGE_OPTIONS, wait=ODD, timeout=TIMEOUTS))
def test_images_generate_with_odd_arguments(harness: Harness, prompt: Any, kwargs: dict[str, Any]) -> None:
    harness.run(lambda: harness.client.images.generate(prompt, **kwargs))


@SETTINGS
@given(
    prompt=st.just("make it night") | ODD,
    images=st.just([PNG]) | ODD | st.lists(ODD, min_size=1, max_size=2),
    kwargs=options(IMAGE_OPTIONS, wait=ODD, timeout=TIMEOUTS),
)
def test_images_edit_with_odd_arguments(
    harness: Harness, prompt: Any, images: Any, kwargs: dict[str, Any]
) -> None:
    harness.run(lambda: harness.client.images.edit(prompt, images, **kwargs))


CONTENTS = (
    st.just("a cube")
    | ODD
    | st.lists(st.just("a cube") | st.just(PNG) | ODD, min_size=1, max_size=3)
    | st.builds(lambda text: [{"role": "user", "parts": [{"text": text}]}], ODD)
    | st.builds(lambda data: [{"inline_data": {"mime_type": "image/png", "data": data}}, "x"], ODD)
)


@SETTINGS
@given(contents=CONTENTS, kwargs=options(NATIVE_OPTIONS, wait=ODD, timeout=TIMEOUTS))
def test_generate_content_with_odd_arguments(harness: Harness, contents: Any, kwargs: dict[str, Any]) -> None:
    harness.run(lambda: harness.client.models.generate_content(contents=contents, **kwargs))


@SETTINGS
@given(
    task_id=st.just("task_x") | ODD,
    kwargs=options(
        ["model", "aspect_ratio", "resolution"], kind=ODD | st.sampled_from(["edit", "operation"])
    ),
    timeout=TIMEOUTS,
)
def test_tasks_get_and_wait_with_odd_arguments(
    harness: Harness, task_id: Any, kwargs: dict[str, Any], timeout: Any
) -> None:
    async def call() -> None:
        handle = harness.client.tasks.get(task_id, **kwargs)
        await handle.wait(timeout=1 if timeout is None else timeout)

    harness.run(call)


REF_FIELDS = [
    "id",
    "kind",
    "model",
    "aspect_ratio",
    "resolution",
    "poll_url",
    "created",
    "submitted_at",
    "idempotency_key",
    "version",
    "route_mode",
    "n",
]


@SETTINGS
@given(
    data=ODD
    | st.fixed_dictionaries(
        {"id": st.just("task_x") | ODD, "kind": st.just("generation") | ODD},
        optional=dict.fromkeys(REF_FIELDS[2:], ODD),
    )
)
def test_tasks_from_dict_with_odd_data(harness: Harness, data: Any) -> None:
    async def call() -> None:
        await harness.client.tasks.from_dict(data).wait(timeout=1)

    harness.run(call)


@SETTINGS
@given(timeout=TIMEOUTS)
def test_handle_wait_with_odd_timeouts(harness: Harness, timeout: Any) -> None:
    handle = harness.portal.call(lambda: harness.client.images.generate("a cube", wait=False))
    harness.run(lambda: handle.wait(timeout=timeout))


CLIENT_OPTIONS = [
    "route_mode",
    "timeout",
    "max_concurrency",
    "retry_policy",
    "poll_policy",
    "max_polls_per_second",
    "wait_by_polling",
    "hooks",
    "prices",
    "allow_insecure_http",
    "user_agent",
    "max_response_bytes",
    "max_download_bytes",
    "http_session",
    "task_timeout",
    "max_retries",
    "default_headers",
]


@SETTINGS
@given(api_key=st.just("KEY") | ODD, kwargs=options(CLIENT_OPTIONS, NUMBERS | ODD))
def test_client_options_that_are_odd(harness: Harness, api_key: Any, kwargs: dict[str, Any]) -> None:
    fake = harness.fake

    async def call() -> None:
        key = fake.api_key if api_key == "KEY" else api_key
        client = AsyncMaxAPI(key, base_url=fake.base_url, **kwargs)  # never the real service
        async with client:
            await client.images.generate("a cube", timeout=2)

    error = harness.run(call)
    assert not isinstance(error, InvalidRequestError) or error.argument == "route_mode"


@SETTINGS
@given(fields=options(["total", "connect", "read"], NUMBERS | ODD))
def test_client_timeouts_with_odd_fields(harness: Harness, fields: dict[str, Any]) -> None:
    fake = harness.fake

    async def call() -> None:
        timeouts = Timeouts(**fields)
        async with AsyncMaxAPI(fake.api_key, base_url=fake.base_url, timeout=timeouts) as client:
            await client.images.generate("a cube")

    harness.run(call)


@SETTINGS
@given(
    base_url=st.sampled_from(
        [" ", "ftp://x", "http://[", "http://a b", "\ud800", "https://u:p@h", "http://h:99999"]
    )
    | st.builds(object)
    | st.binary(min_size=1, max_size=4)
    | st.integers()
)
def test_client_base_urls_that_are_odd(harness: Harness, base_url: Any) -> None:
    async def call() -> None:
        AsyncMaxAPI("key", base_url=base_url)

    error = harness.run(call)
    assert isinstance(error, ConfigurationError)
