"""Secret hygiene: the API key shows up nowhere but in the ``Authorization`` header of requests to
the API's own origin, and names derived from server data cannot leave their folder.

A canary key is the fake's only valid key, so a flow that succeeds has really sent it; every
``repr``/``str``, every error (chained causes included) and every log line at DEBUG is then
searched for it. A service that echoes the key back (scripted with ``Fault`` bodies and task
failures holding the key the client sent) must not get it into errors, logs, hook events, the
batch journal or the command line's output either.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import json
import logging
import re
import socket
import sys
import traceback
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

import maxapi_async
import maxapi_async._cli.commands
from maxapi_async import (
    AsyncMaxAPI,
    Batch,
    GenerateRequest,
    Hooks,
    ImageAsset,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from maxapi_async._cli.commands import main
from maxapi_async._protocol.redact import REDACTED, Redactor
from maxapi_async._transport.files import safe_filename
from maxapi_async.testing import FakeMaxAPI, Fault, make_png

CANARY = "sk-canary-7f3a9c1e5b2d4f60a8e1"
WRONG = "sk-canary-wrong-0c9d8e7f6a5b"
SECRETS = (CANARY, WRONG, CANARY.removeprefix("sk-"), WRONG.removeprefix("sk-"))
GENERATIONS = "/v1/images/generations"
TRUNCATED = b'{"created": 1, "da'

pytestmark = [pytest.mark.anyio, pytest.mark.fake_maxapi(api_key=CANARY)]


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def error_texts(err: BaseException) -> str:
    """Everything a program or a log handler may print about an error, causes included."""
    parts = [str(err), repr(err), "".join(traceback.format_exception(err)), repr(vars(err))]
    cause = err.__cause__ or err.__context__
    while cause is not None:
        parts += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


@pytest.fixture
async def client(fake_maxapi: FakeMaxAPI) -> AsyncIterator[AsyncMaxAPI]:
    async with AsyncMaxAPI(
        CANARY,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.instant(),
        poll_policy=PollPolicy.instant(),
        max_polls_per_second=1000,
    ) as c:
        yield c


# -- repr, str, errors and logs ------------------------------------------------------------------


async def test_no_repr_or_str_of_the_client_or_its_configuration_shows_the_key(
    fake_maxapi: FakeMaxAPI,
) -> None:
    client = AsyncMaxAPI(
        CANARY,
        base_url=fake_maxapi.base_url,
        timeout=Timeouts(total=30, connect=2, read=20),
        retry_policy=RetryPolicy(max_attempts=2),
        poll_policy=PollPolicy(),
        hooks=Hooks(on_request=print),
    )
    async with client:
        await client.images.generate("a cube")  # the session exists, the key has been used
        things: list[Any] = [
            client,
            client.timeouts,
            client.retry_policy,
            client.poll_policy,
            client.hooks,
            client.images,
            client.models,
            client.tasks,
            client._transport,
            client._transport._credentials,
            vars(client),
        ]
        for thing in things:
            assert_no_secret(repr(thing))
            assert_no_secret(str(thing))
    assert_no_secret(repr(client))


async def collect_errors(client: AsyncMaxAPI, fake: FakeMaxAPI, tmp_path: Path) -> list[BaseException]:
    """Run calls that fail in every way the client knows, and return their errors."""
    errors: list[BaseException] = []

    async def expect(call: Any, error: type[BaseException] = maxapi_async.MaxAPIError) -> None:
        try:
            await call
        except error as exc:
            errors.append(exc)
        else:
            raise AssertionError(f"{call} did not fail")

    fake.add_fault(Fault(reset=True, method="POST"))
    await expect(client.images.generate("reset after sending"))
    fake.add_fault(Fault(delay=2.0, method="POST"))
    await expect(client.images.generate("read timeout", timeout=0.2))
    fake.add_fault(Fault(status=200, body=TRUNCATED, method="POST"))
    await expect(client.images.generate("truncated answer", wait=False))
    fake.fail_next(400)
    await expect(client.images.generate("bad request"))
    fake.fail_next(503, times=None)
    await expect(client.images.generate("server down"))
    fake.clear_faults()
    await expect(client.tasks.get("no-such-task").wait())
    fake.fail_tasks("CONTENT_MODERATION")
    await expect(_moderated(client))
    fake.block_next("IMAGE_SAFETY")
    await expect(client.models.generate_content(contents="blocked"))
    fake.complete_after_polls = 1_000
    handle = await client.images.generate("slow", wait=False)
    await expect(handle.wait(timeout=0.05))
    fake.complete_after_polls = 1
    asset = (await client.images.generate("an asset")).images[0]
    fake.add_fault(Fault(status=404, origin="cdn"))
    await expect(asset.save(tmp_path / "gone.png"))
    fake.add_fault(Fault(status=200, body=b"<html>", headers={"Content-Type": "text/html"}, origin="cdn"))
    await expect(asset.read())
    await expect(client.images.generate(""))
    async with AsyncMaxAPI(WRONG, base_url=fake.base_url) as wrong:
        await expect(wrong.images.generate("wrong key"))
    async with AsyncMaxAPI(CANARY, base_url=fake.base_url, max_response_bytes=10) as small:
        await expect(small.images.generate("too large"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    async with AsyncMaxAPI(
        CANARY, base_url=f"http://127.0.0.1:{closed_port}", retry_policy=RetryPolicy.none()
    ) as c:
        await expect(c.images.generate("refused"))
    closed = AsyncMaxAPI(CANARY, base_url=fake.base_url)
    await closed.aclose()
    await expect(closed.images.generate("closed"))
    try:
        AsyncMaxAPI(CANARY, base_url="http://api.maxapi.dev")
    except maxapi_async.ConfigurationError as exc:
        errors.append(exc)
    return errors


async def _moderated(client: AsyncMaxAPI) -> object:
    handle = await client.images.generate("moderated", wait=False)
    return await handle


@pytest.mark.fake_maxapi(api_key=CANARY, complete_after_polls=1)
async def test_no_error_and_no_debug_log_line_shows_the_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, aiohttp's, asyncio's
    # A full flow with retries: a failed submission, failed polls, a failed download.
    fake_maxapi.fail_next(500)
    await client.images.generate("sync")
    handle = await client.images.generate("queued", wait=False)
    fake_maxapi.add_fault(Fault(status=503, method="GET"))
    fake_maxapi.add_fault(Fault(reset=True, method="GET", times=2))
    result = await handle
    fake_maxapi.add_fault(Fault(status=502, origin="cdn"))
    await result.images[0].save(tmp_path / "queued.png")
    await client.models.generate_content(contents="native")
    await (await client.models.generate_content(contents="native queued", wait=False))
    await client.images.edit("edit", [make_png(8, 8)])

    errors = await collect_errors(client, fake_maxapi, tmp_path)
    kinds = {type(e).__name__ for e in errors}
    assert {
        "APIConnectionError",
        "APITimeoutError",
        "ResponseError",
        "BadRequestError",
        "ServerError",
        "NotFoundError",
        "TaskFailedError",
        "BlockedError",
        "TaskTimeoutError",
        "AssetTypeError",
        "InvalidRequestError",
        "AuthenticationError",
        "ResponseTooLargeError",
        "ClientClosedError",
        "ConfigurationError",
    } <= kinds
    for err in errors:
        assert_no_secret(error_texts(err))

    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    lines = [formatter.format(record) for record in caplog.records]
    assert any("attempt 2" in line for line in lines)  # the retries were logged
    for line in lines:
        assert_no_secret(line)


# -- a service that echoes the key back -----------------------------------------------------------

ECHO = f"Incorrect API key provided: Bearer {CANARY}"


def strings_in(obj: Any) -> Iterator[str]:
    """Every string in a parsed JSON value (object keys too), or in an error's attributes."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from strings_in(value)
    elif obj is not None and not isinstance(obj, (int, float, bytes)):
        yield repr(obj)


def assert_clean_error(err: BaseException) -> None:
    assert_no_secret(error_texts(err))
    for attribute in ("body", "raw", "message", "code", "reason", "request_id", "response"):
        for text in strings_in(getattr(err, attribute, None)):
            assert_no_secret(text)


async def _echo_in_a_401(client: AsyncMaxAPI, fake: FakeMaxAPI) -> object:
    seen = {CANARY: [f"Bearer {CANARY}"]}
    body = {"error": {"message": ECHO, "code": "invalid_api_key", "seen": seen}}
    fake.add_fault(Fault(status=401, body=body))
    return await client.images.generate("a cube")


async def _echo_in_an_html_500_page(client: AsyncMaxAPI, fake: FakeMaxAPI) -> object:
    page = f"<html><body><h1>500 Internal Server Error</h1><pre>Bearer {CANARY}</pre></body></html>"
    fake.add_fault(Fault(status=500, body=page, headers={"Content-Type": "text/html"}, times=None))
    return await client.images.generate("a cube")  # retried (instantly), then given up


async def _echo_in_a_task_failure(client: AsyncMaxAPI, fake: FakeMaxAPI) -> object:
    fake.fail_tasks("CONTENT_MODERATION", f"refused: the key {CANARY} may not use this model")
    return await (await client.images.generate("a cube", wait=False))


async def _echo_in_an_operation_error(client: AsyncMaxAPI, fake: FakeMaxAPI) -> object:
    fake.fail_tasks("INVALID_PARAMETERS", ECHO)
    return await (await client.models.generate_content(contents="a cube", wait=False))


async def _echo_in_a_block_reason(client: AsyncMaxAPI, fake: FakeMaxAPI) -> object:
    fake.block_next(f"SAFETY:{CANARY}", prompt_feedback=True)
    return await client.models.generate_content(contents="a cube")


@pytest.mark.parametrize(
    ("echo", "error"),
    [
        (_echo_in_a_401, maxapi_async.AuthenticationError),
        (_echo_in_an_html_500_page, maxapi_async.ServerError),
        (_echo_in_a_task_failure, maxapi_async.TaskFailedError),
        (_echo_in_an_operation_error, maxapi_async.TaskFailedError),
        (_echo_in_a_block_reason, maxapi_async.BlockedError),
    ],
)
@pytest.mark.fake_maxapi(api_key=CANARY, complete_after_polls=1)
async def test_a_key_the_service_echoes_reaches_no_error_log_or_hook(
    fake_maxapi: FakeMaxAPI,
    caplog: pytest.LogCaptureFixture,
    echo: Callable[[AsyncMaxAPI, FakeMaxAPI], Awaitable[object]],
    error: type[BaseException],
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[object] = []
    record = events.append
    hooks = Hooks(on_request=record, on_retry=record, on_poll=record, on_task_done=record)
    async with AsyncMaxAPI(
        CANARY,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.instant(),
        poll_policy=PollPolicy.instant(),
        hooks=hooks,
    ) as client:
        with pytest.raises(error) as info:
            await echo(client, fake_maxapi)
    assert_clean_error(info.value)
    # Redacted, not dropped: what the service said is still there.
    assert REDACTED in error_texts(info.value) + repr(getattr(info.value, "raw", None))
    assert events
    for event in events:
        assert_no_secret(repr(event))
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    for record in caplog.records:
        assert_no_secret(formatter.format(record))


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """An API that quotes the ``Authorization`` header it got: a POST gets a 401 saying so, a GET a
    running task; both answers carry ``x-request-id: req-<key>``."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        key = sent.partition(" ")[2]
        if request.method == "GET":
            task = {"id": "task_1", "status": "processing", "progress": 10}
            return web.json_response(task, headers={"x-request-id": f"req-{key}"})
        error = {
            "message": f"Incorrect API key provided: {sent}",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "param": urllib.parse.quote(key, safe=""),
            "seen": {key: [sent]},
        }
        return web.json_response({"error": error}, status=401, headers={"x-request-id": f"req-{key}"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_a_request_id_header_that_quotes_the_key_is_redacted(echo_server: str) -> None:
    events: list[maxapi_async.RequestEvent] = []
    async with AsyncMaxAPI(CANARY, base_url=echo_server, hooks=Hooks(on_request=events.append)) as client:
        await client.tasks.get("task_1").refresh()
    assert [e.request_id for e in events] == [f"req-{REDACTED}"]
    async with AsyncMaxAPI(CANARY, base_url=echo_server, max_response_bytes=10) as small:
        with pytest.raises(maxapi_async.ResponseTooLargeError) as info:
            await small.tasks.get("task_1").refresh()
    assert info.value.request_id == f"req-{REDACTED}"
    assert_clean_error(info.value)


@pytest.mark.parametrize("key", [CANARY, "sk-live/9c1e+5b2d=4f60_a8e1.7f3a~c0"])
async def test_a_401_that_quotes_the_authorization_header_keeps_what_it_said_without_the_key(
    echo_server: str, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[object] = []
    async with AsyncMaxAPI(key, base_url=echo_server, hooks=Hooks(on_request=events.append)) as client:
        with pytest.raises(maxapi_async.AuthenticationError) as info:
            await client.images.generate("a cube")
    err = info.value
    assert err.message == f"Incorrect API key provided: Bearer {REDACTED}"
    assert err.code == "invalid_api_key"
    assert err.request_id == f"req-{REDACTED}"
    assert err.body == {
        "error": {
            "message": err.message,
            "type": "invalid_request_error",
            "code": "invalid_api_key",
            "param": REDACTED,
            "seen": {REDACTED: [f"Bearer {REDACTED}"]},
        }
    }
    [event] = events
    texts = [error_texts(err), repr(event), *(caplog.text.splitlines())]
    for spelling in (key, urllib.parse.quote(key, safe="")):
        assert all(spelling not in text for text in texts)


async def test_a_key_echoed_in_a_successful_answer_is_redacted(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    # Every answer passes through the redactor: one substring search when the key is absent.
    png = make_png(8, 8)
    item = {"b64_json": base64.b64encode(png).decode(), "revised_prompt": f"made for Bearer {CANARY}"}
    fake_maxapi.add_fault(Fault(status=200, body={"created": 1, "data": [item], "note": CANARY}))
    result = await client.images.generate("a cube")
    assert result.images[0].data == png  # the image itself is untouched
    assert result.images[0].revised_prompt == f"made for Bearer {REDACTED}"
    assert result.raw["note"] == REDACTED
    assert_no_secret(repr(result) + str(result))
    for text in strings_in(result.raw):
        assert_no_secret(text)


async def test_a_key_echoed_in_a_malformed_status_line_is_redacted() -> None:
    # aiohttp's own error quotes the bytes it could not parse; the client's message repeats them.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 2x0 Bearer {CANARY}\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        base_url = f"http://127.0.0.1:{port}"
        async with AsyncMaxAPI(CANARY, base_url=base_url, retry_policy=RetryPolicy.none()) as client:
            with pytest.raises(maxapi_async.APIConnectionError) as info:
                await client.tasks.get("task_1").refresh()
    finally:
        server.close()
        await server.wait_closed()
    assert "Bad status line" in str(info.value)
    assert REDACTED in str(info.value)
    assert_clean_error(info.value)


@pytest.mark.fake_maxapi(api_key=CANARY, complete_after_polls=1)
async def test_a_key_echoed_in_task_failures_stays_out_of_the_batch_journal(
    fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    fake_maxapi.fail_tasks("CONTENT_MODERATION", f"refused for Bearer {CANARY}", times=2)
    fake_maxapi.add_fault(Fault(status=400, body={"error": {"message": ECHO}}, method="POST"))
    async with AsyncMaxAPI(
        CANARY,
        base_url=fake_maxapi.base_url,
        retry_policy=RetryPolicy.instant(),
        poll_policy=PollPolicy.instant(),
        max_polls_per_second=1000,
    ) as client:
        items = [GenerateRequest(f"cube {i}", key=f"k{i}") for i in range(4)]
        outcomes = await Batch(client, items, concurrency=1, journal=journal)
    assert sorted(o.status for o in outcomes) == ["done", "failed", "failed", "failed"]
    text = journal.read_text()
    assert REDACTED in text  # the failures were journaled, with the key taken out
    assert_no_secret(text)
    for outcome in outcomes:
        assert_no_secret(repr(outcome))
        if outcome.error is not None:
            assert_clean_error(outcome.error)


def test_a_key_echoed_by_the_service_stays_out_of_the_command_lines_output(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("one\ntwo\n")
    journal = tmp_path / "run.jsonl"
    refused = f"refused for Bearer {CANARY}"
    printed: list[str] = []
    with start_blocking_portal() as portal:
        fake = portal.call(lambda: FakeMaxAPI(api_key=CANARY, complete_after_polls=1).start())
        try:
            monkeypatch.setenv("MAXAPI_KEY", CANARY)
            monkeypatch.setenv("MAXAPI_BASE_URL", fake.base_url)
            instant = functools.partial(AsyncMaxAPI, poll_policy=PollPolicy.instant())
            monkeypatch.setattr(
                maxapi_async._cli.commands, "AsyncMaxAPI", instant
            )  # the CLI polls as for the service
            fake.add_fault(Fault(status=401, body={"error": {"message": ECHO, "code": CANARY}}))
            assert main(["--json", "generate", "a cube"]) == 1
            out, err = capsys.readouterr()
            assert json.loads(out)["error"]["code"] == REDACTED
            printed += [out, err]
            fake.fail_tasks("CONTENT_MODERATION", refused, times=2)
            assert main(["--json", "batch", str(prompts), "--journal", str(journal)]) == 1
            out, err = capsys.readouterr()
            outcomes = json.loads(out)["outcomes"]
            assert [f"refused for Bearer {REDACTED}" in o["error"] for o in outcomes] == [True, True]
            printed += [out, err, journal.read_text()]
            fake.fail_tasks("CONTENT_MODERATION", refused)
            assert main(["generate", "a cube", "--queued"]) == 1
            out, err = capsys.readouterr()
            assert f"refused for Bearer {REDACTED}" in err
            printed += [out, err]
        finally:
            portal.call(fake.close)
    for text in printed:
        assert_no_secret(text)


async def test_no_frame_of_a_request_holds_the_key_in_a_local_variable(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    # What an error tracker recording locals would store: every local of every frame of the
    # library (the fake server's own frames aside), each time one starts, resumes or suspends.
    leaks: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        module = frame.f_globals.get("__name__", "")
        if event not in ("call", "return") or not module.startswith("maxapi_async."):
            return
        if module.startswith("maxapi_async.testing"):
            return
        for name, value in list(frame.f_locals.items()):
            try:
                shown = value if isinstance(value, str) else repr(value)
            except Exception:
                continue
            if CANARY in shown:
                leaks.add(f"{frame.f_code.co_name} in {module}: {name}")

    await client.images.generate("warm up")  # the session exists: aiohttp is loaded, a connection pooled
    sys.setprofile(profile)
    try:
        await client.images.generate("a cube")
        await (await client.images.generate("a cube", wait=False))
        await client.models.generate_content(contents="a cube")
        await client.images.edit("an edit", [make_png(8, 8)])
        fake_maxapi.fail_next(400)
        with pytest.raises(maxapi_async.BadRequestError):
            await client.images.generate("refused")
    finally:
        sys.setprofile(None)
    assert leaks == set()
    assert REDACTED in repr(client._transport._json_headers)


# -- the redactor, without a server ------------------------------------------------------------------

PUNCTUATED = "sk-live/9c1e+5b2d=4f60_a8e1.7f3a~c0"


def _lower_hex(text: str) -> str:
    return re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), text)


@pytest.mark.parametrize(
    "spelling",
    [
        PUNCTUATED,
        urllib.parse.quote(PUNCTUATED, safe=""),
        urllib.parse.quote(PUNCTUATED),  # "/" left as it is
        _lower_hex(urllib.parse.quote(PUNCTUATED, safe="")),
        urllib.parse.quote_plus(PUNCTUATED),
        json.dumps(PUNCTUATED)[1:-1].replace("/", "\\/"),  # PHP's json_encode escapes "/"
        PUNCTUATED.replace("+", "\\u002B").replace("=", "\\u003d"),
        html.escape(PUNCTUATED).replace("+", "&#43;").replace("/", "&#x2F;").replace("=", "&equals;"),
    ],
)
def test_the_key_is_found_in_every_spelling_a_server_may_echo_it_in(spelling: str) -> None:
    assert Redactor(PUNCTUATED).text(f"rejected ({spelling}).") == f"rejected ({REDACTED})."
    assert Redactor(PUNCTUATED).body(f"<p>{spelling}</p>".encode()) == f"<p>{REDACTED}</p>".encode()


def test_a_json_body_is_redacted_in_keys_and_values_and_keeps_its_shape() -> None:
    def body(key: str) -> dict[str, Any]:
        error = {"message": f"Bearer {key}", key: [1, 2.5, None, True, {"k": key}]}
        return {"error": error, "big": 12345678901234567890, "text": "caf\u00e9 \ud800"}

    value, expected = body(PUNCTUATED), body(REDACTED)
    redactor = Redactor(PUNCTUATED)
    compact = json.dumps(value).encode()
    assert json.loads(redactor.body(compact)) == expected
    assert json.loads(redactor.body(compact.replace(b"/", b"\\/"))) == expected  # escaped inside JSON
    assert redactor.value(value) == expected


def test_a_text_body_keeps_every_byte_but_the_key() -> None:
    body = b"\xff\xfe<html>" + f"Bearer {PUNCTUATED}".encode() + b"</html>\x80"
    assert Redactor(PUNCTUATED).body(body) == b"\xff\xfe<html>Bearer [redacted]</html>\x80"


def test_headers_are_redacted_in_a_case_insensitive_copy() -> None:
    headers = CIMultiDict({"X-Request-Id": f"req-{PUNCTUATED}", "Retry-After": "2"})
    clean = Redactor(PUNCTUATED).headers(headers)
    assert clean["x-request-id"] == f"req-{REDACTED}"
    assert clean.get("retry-after") == "2"


def test_an_answer_without_the_key_is_returned_as_it_is() -> None:
    redactor = Redactor(CANARY)
    body = json.dumps({"data": [{"url": "https://cdn.maxapi.dev/a.png"}], "n": "sk-canary"}).encode()
    headers = CIMultiDict({"x-request-id": "req_1"})
    assert redactor.body(body) is body
    assert redactor.headers(headers) is headers
    assert redactor.text(CANARY[:-1]) == CANARY[:-1]  # nearly the key is not the key


def test_a_key_shorter_than_eight_characters_is_not_searched_for() -> None:
    # A key that short is a placeholder: replacing it would mangle ordinary text and images.
    redactor = Redactor("sk-test")
    assert not redactor.active
    assert redactor.text("sk-test and sk-tests") == "sk-test and sk-tests"
    assert redactor.body(b'{"m": "sk-test"}') == b'{"m": "sk-test"}'
    assert Redactor("sk-test1").text("sk-test1") == REDACTED


def test_the_redactor_never_shows_its_key() -> None:
    redactor = Redactor(CANARY)
    assert_no_secret(repr(redactor) + str(redactor))


# -- the key goes to the API origin only ---------------------------------------------------------


@pytest.mark.fake_maxapi(api_key=CANARY, gemini_file_data=True)
async def test_the_key_goes_only_to_the_api_origin_and_never_into_a_url(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    result = await client.images.generate("a cube")
    await result.images[0].read()
    mirrored = await client.images.generate("a cube", asset_delivery="mirror")
    await mirrored.images[0].save(tmp_path / "mirror.png")
    native = await client.models.generate_content(contents="a cube")
    [image] = native.images
    assert image.url is not None
    await ImageAsset(url=image.url, fetcher=client).read()  # the fileData URL, downloaded
    assert fake_maxapi.requests
    for request in fake_maxapi.requests:
        assert request.header("Authorization") == f"Bearer {CANARY}"
        assert request.header("x-goog-api-key") is None
        assert_no_secret(repr(request.query))
        assert_no_secret(request.path)
    assert len(fake_maxapi.cdn_requests) == 3
    for request in fake_maxapi.cdn_requests:
        assert request.header("Authorization") is None
        assert_no_secret(repr(request.headers))
        assert_no_secret(request.path + repr(request.query))


@pytest.mark.parametrize("target", ["api", "mirror"])
async def test_a_cdn_redirect_to_another_origin_carries_no_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, target: str
) -> None:
    asset = (await client.images.generate("a cube")).images[0]
    asset_id = Path(asset.url or "").stem
    location = (
        f"{fake_maxapi.base_url}{GENERATIONS}/task_x"
        if target == "api"
        else fake_maxapi.asset_url(asset_id, mirror=True)
    )
    fake_maxapi.add_fault(Fault(status=302, headers={"Location": location}, origin="cdn"))
    if target == "api":
        with pytest.raises(maxapi_async.AuthenticationError):
            await asset.read()  # the API origin refuses a request without the key
        followed = fake_maxapi.requests[-1]
    else:
        assert await asset.read() == fake_maxapi.assets[asset_id].data
        followed = fake_maxapi.cdn_requests[-1]
        assert followed.path.startswith("/mirror/")
    assert followed.header("Authorization") is None
    assert all(r.header("Authorization") is None for r in fake_maxapi.cdn_requests)


@pytest.mark.parametrize(("method", "status"), [("POST", 302), ("POST", 307), ("GET", 301), ("GET", 308)])
async def test_an_api_redirect_is_never_followed(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, method: str, status: int
) -> None:
    steal = f"{fake_maxapi.cdn_url}/steal"
    handle = await client.images.generate("a cube", wait=False)
    fake_maxapi.add_fault(Fault(status=status, method=method, headers={"Location": steal}))
    before = len(fake_maxapi.requests)
    call = client.images.generate("a cube") if method == "POST" else handle.refresh()
    with pytest.raises(maxapi_async.APIError) as info:
        await call
    assert info.value.status == status
    assert len(fake_maxapi.requests) == before + 1
    assert fake_maxapi.cdn_requests == []


@pytest.mark.fake_maxapi(api_key=CANARY, poll_url_style="foreign")
async def test_a_poll_url_on_another_origin_is_never_followed_with_the_key(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI
) -> None:
    handle = await client.images.generate("a cube", wait=False)
    assert handle.ref.poll_url is not None
    assert handle.ref.poll_url.startswith(fake_maxapi.cdn_url)
    await handle
    polls = [r for r in fake_maxapi.requests if r.method == "GET"]
    assert polls
    assert all(r.path == f"{GENERATIONS}/{handle.id}" for r in polls)
    assert fake_maxapi.cdn_requests == []


# -- plain http ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.maxapi.dev",
        "http://10.0.0.1",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "http://0.0.0.0:8080",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(maxapi_async.ConfigurationError, match="unencrypted") as info:
        AsyncMaxAPI(CANARY, base_url=url)
    assert_no_secret(error_texts(info.value))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9", "http://127.8.9.10", "http://[::1]:9", "http://localhost"]
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    AsyncMaxAPI(CANARY, base_url=url)


def test_plain_http_elsewhere_needs_an_explicit_opt_in() -> None:
    client = AsyncMaxAPI(CANARY, base_url="http://intranet.example", allow_insecure_http=True)
    assert client.base_url.scheme == "http"


# -- file names from server data -----------------------------------------------------------------


class WritingFetcher:
    """Stands in for the client: ``save`` writes these bytes wherever it was told."""

    def __init__(self) -> None:
        self.targets: list[Path] = []

    async def _download_bytes(self, url: str) -> bytes:
        return make_png(4, 4)

    async def _download_to(self, url: str, path: Path) -> None:
        self.targets.append(path)
        await anyio.Path(path).write_bytes(make_png(4, 4))


HOSTILE_URLS = [
    "https://cdn.maxapi.dev/../../etc/passwd",
    "https://cdn.maxapi.dev/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "https://cdn.maxapi.dev/assets/..%5c..%5cwindows%5cwin.ini",
    "https://cdn.maxapi.dev/assets/..\\..\\x.png",
    "https://cdn.maxapi.dev/assets/..",
    "https://cdn.maxapi.dev/assets/.",
    "https://cdn.maxapi.dev/assets/",
    "https://cdn.maxapi.dev",
    "",
    "https://cdn.maxapi.dev/assets/%00evil.png",
    "https://cdn.maxapi.dev/assets/.hidden.png",
    "https://cdn.maxapi.dev/assets/" + "a" * 5_000 + ".png",
    "https://cdn.maxapi.dev/assets/x.png?name=../../etc/passwd#../../y",
    "file:///etc/passwd",
    "https://cdn.maxapi.dev/assets/%2F%2Froot%2F.ssh%2Fauthorized_keys",
]


def assert_safe_name(name: str) -> None:
    assert name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert len(name) <= 128


@pytest.mark.parametrize("url", HOSTILE_URLS)
async def test_a_file_named_from_a_url_stays_in_its_folder(tmp_path: Path, url: str) -> None:
    folder = tmp_path / "out"
    await anyio.Path(folder).mkdir()
    fetcher = WritingFetcher()
    asset = ImageAsset(url=url or None, data=None if url else make_png(4, 4), fetcher=fetcher)
    saved = await asset.save(folder)
    assert saved.parent == folder
    real = await anyio.Path(saved).resolve()
    assert real.parent == await anyio.Path(folder).resolve()
    assert_safe_name(saved.name)
    assert sorted([p.name async for p in anyio.Path(folder).iterdir()]) == [saved.name]


@given(
    url=st.text(max_size=300) | st.builds(lambda s: "https://cdn.maxapi.dev/a/" + s, st.text(max_size=300))
)
def test_any_url_gives_a_safe_file_name(url: str) -> None:
    assert_safe_name(safe_filename(url, default="image.png"))


async def test_a_hostile_asset_url_from_the_service_is_saved_inside_the_folder(
    client: AsyncMaxAPI, fake_maxapi: FakeMaxAPI, tmp_path: Path
) -> None:
    url = f"{fake_maxapi.cdn_url}/assets/%2e%2e%2f%2e%2e%2fescape.png"
    fake_maxapi.add_fault(Fault(status=200, body={"created": 1, "data": [{"url": url}]}))
    result = await client.images.generate("a cube")
    fake_maxapi.add_fault(
        Fault(status=200, body=make_png(4, 4), headers={"Content-Type": "image/png"}, origin="cdn")
    )
    folder = tmp_path / "out"
    await anyio.Path(folder).mkdir()
    saved = await result.images[0].save(folder)
    assert saved == folder / "escape.png"
    assert sorted([p.name async for p in anyio.Path(tmp_path).iterdir()]) == ["out"]
