"""Queued tasks with no socket: every task-object variant of WIRE.md, operations, poll paths,
the task state machine and resumable references."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from maxapi_async._protocol.errors import (
    APITimeoutError,
    InsufficientCreditsError,
    InvalidRequestError,
    MaxAPIError,
    NotFoundError,
    ResponseError,
    TaskFailedError,
    TaskProtocolError,
    TaskTimeoutError,
)
from maxapi_async._protocol.openai_answer import ImageData
from maxapi_async._protocol.task_objects import parse_operation, parse_task, task_failed_error
from maxapi_async._protocol.tasks import (
    MachineState,
    TaskKind,
    TaskMachine,
    TaskRef,
    TaskSnapshot,
    TaskState,
    classify_status,
    default_poll_path,
    poll_path,
)

ORIGIN = URL("https://api.maxapi.dev")
CDN = "https://cdn.maxapi.dev/out/1.png"

PENDING_WORDS = ["queued", "pending", "submitted", "waiting", "created", "not_started"]
RUNNING_WORDS = ["processing", "running", "in_progress", "started", "generating"]
SUCCEEDED_WORDS = ["succeeded", "success", "completed", "complete", "done", "finished"]
FAILED_WORDS = [
    "failed", "failure", "error", "timeout", "timed_out", "expired", "cancelled", "canceled", "rejected",
]  # fmt: skip
ALL_WORDS = [
    *((w, TaskState.PENDING) for w in PENDING_WORDS),
    *((w, TaskState.RUNNING) for w in RUNNING_WORDS),
    *((w, TaskState.SUCCEEDED) for w in SUCCEEDED_WORDS),
    *((w, TaskState.FAILED) for w in FAILED_WORDS),
]


def _mixed(word: str) -> str:
    return "".join(c.upper() if i % 2 == 0 else c for i, c in enumerate(word))


CASES = [str.lower, str.upper, _mixed]


def envelope(task: dict[str, Any]) -> dict[str, Any]:
    return {"code": 0, "msg": "ok", "data": task}


def bare(task: dict[str, Any]) -> dict[str, Any]:
    return task


WRAPS = [pytest.param(bare, id="bare"), pytest.param(envelope, id="envelope")]


def task(**fields: Any) -> dict[str, Any]:
    return {"id": "t-1", **fields}


def succeeded(**fields: Any) -> dict[str, Any]:
    return task(status="succeeded", data=[{"url": CDN}], **fields)


# -- status words ---------------------------------------------------------------


@pytest.mark.parametrize("case", [*CASES, str.title], ids=["lower", "upper", "mixed", "title"])
def test_every_status_word_maps_to_its_state_in_any_case(case: Any) -> None:
    assert {word: classify_status(case(word)) for word, _ in ALL_WORDS} == dict(ALL_WORDS)


@pytest.mark.parametrize(
    "word", ["in-progress", "In Progress", " IN_PROGRESS ", "in  progress", "Not-Started"]
)
def test_status_words_accept_spaces_and_hyphens(word: str) -> None:
    assert classify_status(word) in (TaskState.RUNNING, TaskState.PENDING)


@pytest.mark.parametrize("word", ["levitating", "", "succeeded-ish", None])
def test_unknown_status_words_classify_as_none(word: str | None) -> None:
    assert classify_status(word) is None


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("case", CASES, ids=["lower", "upper", "mixed"])
@pytest.mark.parametrize(("word", "state"), ALL_WORDS)
def test_parse_task_reads_every_status_word_bare_and_enveloped(
    word: str, state: TaskState, case: Any, wrap: Any
) -> None:
    sent = case(word)
    obj = task(status=sent, data=[{"url": CDN}]) if state is TaskState.SUCCEEDED else task(status=sent)
    snap = parse_task(wrap(obj), kind="generation")
    assert snap.state is state
    assert snap.status == sent


def test_state_key_is_read_when_status_is_absent() -> None:
    assert parse_task(task(state="RUNNING"), kind="generation").state is TaskState.RUNNING


def test_unknown_status_is_running_and_keeps_the_word() -> None:
    snap = parse_task(task(status="Levitating", data=[{"url": CDN}]), kind="generation")
    assert snap.state is TaskState.RUNNING
    assert snap.status == "Levitating"
    assert snap.unknown_status == "Levitating"
    assert snap.images == []  # never success, even with assets beside it


def test_missing_status_with_openai_shaped_images_is_success() -> None:
    snap = parse_task(task(data=[{"url": CDN}]), kind="generation")
    assert snap.state is TaskState.SUCCEEDED


def test_missing_status_without_anything_is_running() -> None:
    snap = parse_task(task(), kind="generation")
    assert snap.state is TaskState.RUNNING
    assert snap.status is None
    assert snap.unknown_status is None


def test_missing_status_with_an_error_is_failure() -> None:
    snap = parse_task(task(error={"message": "boom"}), kind="generation")
    assert snap.state is TaskState.FAILED


# -- ids and envelopes -----------------------------------------------------------


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize("key", ["id", "task_id", "taskId"])
def test_the_task_id_comes_from_any_of_the_three_keys(key: str, wrap: Any) -> None:
    snap = parse_task(wrap({key: "abc", "status": "queued"}), kind="edit")
    assert snap.id == "abc"
    assert snap.kind == "edit"


def test_a_numeric_task_id_becomes_a_string() -> None:
    assert parse_task({"task_id": 12345, "status": "queued"}, kind="generation").id == "12345"


def test_raw_is_the_task_object_inside_the_envelope() -> None:
    inner = task(status="queued", custom={"x": 1})
    assert parse_task(envelope(inner), kind="generation").raw == inner


@pytest.mark.parametrize("code", [0, 200, "0", "ok", "success"])
def test_envelope_success_codes_are_accepted(code: object) -> None:
    assert (
        parse_task({"code": code, "msg": "ok", "data": task(status="queued")}, kind="generation").id == "t-1"
    )


def test_envelope_with_http_like_error_code_raises_the_typed_error() -> None:
    with pytest.raises(InsufficientCreditsError) as info:
        parse_task({"code": 402, "msg": "not enough points"}, kind="generation", request_id="req-1")
    assert info.value.message == "not enough points"
    assert info.value.request_id == "req-1"


def test_envelope_with_404_code_raises_not_found() -> None:
    with pytest.raises(NotFoundError):
        parse_task({"code": 404, "msg": "no such task", "data": None}, kind="generation")


def test_envelope_with_platform_error_code_raises_response_error() -> None:
    with pytest.raises(ResponseError, match="code 1001"):
        parse_task({"code": 1001, "msg": "queue full"}, kind="generation")


# -- assets -----------------------------------------------------------------------


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize(
    "assets",
    [
        pytest.param({"data": [{"url": CDN, "revised_prompt": "p"}]}, id="data"),
        pytest.param({"result": {"urls": [CDN]}}, id="result.urls"),
        pytest.param({"result": {"data": [{"url": CDN}]}}, id="result.data"),
        pytest.param({"result": {"images": [{"url": CDN}]}}, id="result.images"),
        pytest.param({"result": {"url": CDN}}, id="result.url"),
        pytest.param({"output": [CDN]}, id="output-list"),
        pytest.param({"output": CDN}, id="output-url"),
    ],
)
def test_assets_are_read_from_every_location(assets: dict[str, Any], wrap: Any) -> None:
    snap = parse_task(wrap(task(status="completed", **assets)), kind="generation")
    assert snap.state is TaskState.SUCCEEDED
    assert [image.url for image in snap.images] == [CDN]


def test_base64_assets_are_kept_as_b64_json() -> None:
    snap = parse_task(task(status="success", data=[{"b64_json": "aGk="}]), kind="generation")
    assert snap.images == [ImageData(b64_json="aGk=")]


def test_unknown_asset_fields_stay_on_extra() -> None:
    snap = parse_task(task(status="success", data=[{"url": CDN, "width": 1024}]), kind="generation")
    assert snap.images[0].extra == {"width": 1024}


def test_images_listed_twice_are_read_once() -> None:
    obj = task(status="success", data=[{"url": CDN}], result={"urls": [CDN]})
    assert len(parse_task(obj, kind="generation").images) == 1


@pytest.mark.parametrize(
    "assets",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"data": []}, id="empty-data"),
        pytest.param({"result": {"urls": []}}, id="empty-urls"),
        pytest.param({"result": {}}, id="empty-result"),
    ],
)
def test_success_with_no_assets_is_an_error(assets: dict[str, Any]) -> None:
    with pytest.raises(ResponseError, match="no assets is an error"):
        parse_task(task(status="succeeded", **assets), kind="generation")


@pytest.mark.parametrize(
    "assets",
    [
        pytest.param({"data": [{"url": 3}]}, id="url-not-string"),
        pytest.param({"data": [{"revised_prompt": "p"}]}, id="item-without-image"),
        pytest.param({"data": [7]}, id="item-a-number"),
        pytest.param({"result": {"urls": ["not a url"]}}, id="url-not-a-url"),
        pytest.param({"result": {"urls": "https://x"}}, id="urls-not-a-list"),
        pytest.param({"result": 5}, id="result-a-number"),
    ],
)
def test_malformed_assets_raise_response_error(assets: dict[str, Any]) -> None:
    with pytest.raises(ResponseError):
        parse_task(task(status="succeeded", **assets), kind="generation")


def test_asset_errors_name_the_place() -> None:
    with pytest.raises(ResponseError, match=r"data\[0\].*\$\.url"):
        parse_task(task(status="succeeded", data=[{"url": 3}]), kind="generation")


# -- failures ---------------------------------------------------------------------


@pytest.mark.parametrize("wrap", WRAPS)
@pytest.mark.parametrize(
    ("detail", "message", "code"),
    [
        pytest.param({"error": {"message": "bad", "code": "E1"}}, "bad", "E1", id="error-code"),
        pytest.param(
            {"error": {"message": "bad", "type": "server_error"}}, "bad", "server_error", id="error-type"
        ),
        pytest.param({"error": "bad"}, "bad", None, id="error-text"),
        pytest.param({"failure_reason": "bad"}, "bad", None, id="failure_reason-text"),
        pytest.param({"failure_reason": {"msg": "bad", "code": 7}}, "bad", 7, id="failure_reason-msg"),
        pytest.param({"failure_reason": {"message": "bad"}}, "bad", None, id="failure_reason-message"),
        pytest.param({"fail_reason": "bad"}, "bad", None, id="fail_reason"),
        pytest.param({"message": "bad"}, "bad", None, id="top-level-message"),
    ],
)
def test_failure_detail_is_read_from_every_shape(
    detail: dict[str, Any], message: str, code: object, wrap: Any
) -> None:
    snap = parse_task(wrap(task(status="failed", **detail)), kind="generation")
    assert snap.state is TaskState.FAILED
    assert snap.failure is not None
    assert snap.failure.message == message
    assert snap.failure.code == code


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        ({"error": {"message": "x", "code": "CONTENT_MODERATION"}}, "CONTENT_MODERATION"),
        ({"error": {"message": "x", "code": "content_moderation"}}, "CONTENT_MODERATION"),
        ({"failure_reason": {"msg": "Invalid Parameters: n"}}, "INVALID_PARAMETERS"),
        ({"failure_reason": "insufficient points"}, "INSUFFICIENT_POINTS"),
        ({"error": "blocked by content-moderation"}, "CONTENT_MODERATION"),
        ({"error": "something else"}, None),
    ],
)
def test_known_failure_reasons_are_recognised_in_code_or_message(detail: dict[str, Any], reason: str) -> None:
    snap = parse_task(task(status="FAILED", **detail), kind="generation")
    assert snap.failure is not None
    assert snap.failure.reason == reason


@pytest.mark.parametrize("word", ["timeout", "TIMED_OUT", "Expired"])
def test_timeout_statuses_give_reason_timeout(word: str) -> None:
    snap = parse_task(task(status=word), kind="generation")
    assert snap.failure is not None
    assert snap.failure.reason == "TIMEOUT"


def test_cancelled_status_gives_reason_cancelled() -> None:
    snap = parse_task(task(status="canceled"), kind="generation")
    assert snap.failure is not None
    assert snap.failure.reason == "CANCELLED"


def test_failure_without_detail_still_has_a_message() -> None:
    snap = parse_task(task(status="failed"), kind="generation")
    assert snap.failure is not None
    assert "no reason given" in snap.failure.message


def test_task_failed_error_carries_the_snapshot_facts() -> None:
    obj = task(status="FAILED", error={"message": "nope", "code": "CONTENT_MODERATION"})
    err = task_failed_error(parse_task(obj, kind="edit"), request_id="req-9")
    assert isinstance(err, TaskFailedError)
    assert (err.task_id, err.kind, err.reason, err.status) == ("t-1", "edit", "CONTENT_MODERATION", "FAILED")
    assert err.message == "nope"
    assert err.raw == obj
    assert err.retryable is False
    assert "req-9" in str(err)


def test_a_timed_out_task_is_retryable() -> None:
    err = task_failed_error(parse_task(task(status="timeout"), kind="generation"))
    assert err.retryable is True


# -- optional fields ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        (45, 45.0),
        (45.5, 45.5),
        ("45%", 45.0),
        ("45", 45.0),
        (150, 100.0),
        (-3, 0.0),
        ("soon", None),
        (True, None),
    ],
)
def test_progress_is_read_clamped_or_ignored(sent: object, read: float | None) -> None:
    assert parse_task(task(status="running", progress=sent), kind="generation").progress == read


def test_optional_metadata_is_read() -> None:
    obj = task(
        status="running",
        created_at=1732400000,
        updated_at="2024-11-23T22:13:30Z",
        model="google/gemini-2.5-flash-image",
        poll_url="/v1/images/generations/t-1",
    )
    snap = parse_task(obj, kind="generation")
    assert (snap.created, snap.updated) == (1732400000, 1732400010)
    assert snap.model == "google/gemini-2.5-flash-image"
    assert snap.poll_url == "/v1/images/generations/t-1"


def test_millisecond_timestamps_become_seconds() -> None:
    assert parse_task(task(status="queued", created=1732400000123), kind="generation").created == 1732400000


def test_junk_optional_metadata_is_ignored() -> None:
    snap = parse_task(task(status="queued", created="later", model=5, poll_url=[]), kind="generation")
    assert (snap.created, snap.model, snap.poll_url) == (None, None, None)


# -- malformed input --------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        "queued",
        3,
        {},
        {"status": "queued"},
        {"id": None, "status": "queued"},
        {"id": True},
        {"id": ["a"]},
        {"id": ""},
        {"id": ".."},
        {"id": "a", "status": 3},
        {"code": 0, "msg": "ok", "data": []},
        {"code": 0, "msg": "ok"},
        {"code": True, "data": {"id": "a"}},
    ],
)
def test_malformed_task_objects_raise_response_error(obj: object) -> None:
    with pytest.raises(ResponseError):
        parse_task(obj, kind="generation")


def test_an_unknown_kind_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError):
        parse_task(task(status="queued"), kind="video")  # type: ignore[arg-type]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    [
        "id", "task_id", "taskId", "status", "state", "code", "msg", "data", "result", "output", "urls",
        "url", "b64_json", "images", "error", "failure_reason", "fail_reason", "message", "type",
        "progress", "created", "created_at", "updated_at", "model", "poll_url", "name", "done",
        "metadata", "response",
    ]
)  # fmt: skip
STATUS = st.sampled_from([w for w, _ in ALL_WORDS] + ["SUCCEEDED", "weird"])
TASKISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | STATUS | st.just(CDN) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=JSON | TASKISH)
def test_arbitrary_json_raises_only_library_errors(obj: object) -> None:
    kinds: tuple[TaskKind, ...] = ("generation", "edit", "operation")
    for kind in kinds:
        with contextlib.suppress(MaxAPIError):
            parse_task(obj, kind=kind)
    with contextlib.suppress(MaxAPIError):
        parse_operation(obj)


# -- operations ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["operations/abc", "abc", "models/m/operations/abc"])
def test_operation_name_gives_the_id_without_prefix(name: str) -> None:
    assert parse_operation({"name": name, "done": False}).id == "abc"


@pytest.mark.parametrize("done", [{"done": False}, {}])
def test_an_unfinished_operation_is_running(done: dict[str, Any]) -> None:
    snap = parse_operation({"name": "operations/abc", **done})
    assert snap.kind == "operation"
    assert snap.state is TaskState.RUNNING


def test_operation_metadata_gives_state_and_progress() -> None:
    snap = parse_operation(
        {"name": "operations/a", "done": False, "metadata": {"state": "QUEUED", "progress": 10}}
    )
    assert snap.state is TaskState.PENDING
    assert snap.status == "QUEUED"
    assert snap.progress == 10.0


def test_operation_metadata_cannot_finish_an_operation_that_is_not_done() -> None:
    snap = parse_operation({"name": "operations/a", "done": False, "metadata": {"state": "SUCCEEDED"}})
    assert snap.state is TaskState.RUNNING


def test_a_done_operation_with_a_response_succeeds_and_keeps_it() -> None:
    response: dict[str, Any] = {"candidates": [{"content": {"parts": []}}]}
    snap = parse_operation({"name": "operations/a", "done": True, "response": response})
    assert snap.state is TaskState.SUCCEEDED
    assert snap.response == response


def test_a_done_operation_with_an_error_fails_with_its_detail() -> None:
    error = {"code": 3, "message": "bad ratio", "status": "INVALID_ARGUMENT"}
    snap = parse_operation({"name": "operations/a", "done": True, "error": error})
    assert snap.state is TaskState.FAILED
    assert snap.failure is not None
    assert (snap.failure.message, snap.failure.code, snap.failure.reason) == (
        "bad ratio",
        "INVALID_ARGUMENT",
        "INVALID_PARAMETERS",
    )


@pytest.mark.parametrize(
    "obj",
    [
        {"name": "operations/a", "done": True},
        {"name": "operations/a", "done": True, "response": []},
        {"name": "operations/a", "done": True, "error": "boom"},
        {"name": "operations/a", "done": "yes"},
        {"done": False},
        {"name": "operations/", "done": False},
        {"name": "operations/..", "done": False},
        {"name": 3.5, "done": False},
        ["operations/a"],
    ],
)
def test_malformed_operations_raise_response_error(obj: object) -> None:
    with pytest.raises(ResponseError):
        parse_operation(obj)


def test_parse_task_with_kind_operation_reads_an_operation() -> None:
    assert parse_task({"name": "operations/z", "done": False}, kind="operation").id == "z"


# -- poll paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "task_id", "path"),
    [
        ("generation", "t1", "/v1/images/generations/t1"),
        ("edit", "t1", "/v1/images/edits/t1"),
        ("operation", "operations/o1", "/v1beta/operations/o1"),
        ("operation", "o1", "/v1beta/operations/o1"),
        ("generation", "a/b?c", "/v1/images/generations/a%2Fb%3Fc"),
    ],
)
def test_default_poll_path_per_kind(kind: Any, task_id: str, path: str) -> None:
    assert default_poll_path(kind, task_id) == path


@pytest.mark.parametrize(
    "poll_url",
    [
        "/v1/images/generations/t1?wait=1",
        "https://api.maxapi.dev/v1/tasks/t1",
        "https://API.maxapi.dev:443/v1/tasks/t1",
    ],
)
def test_poll_url_on_the_api_origin_is_followed(poll_url: str) -> None:
    assert poll_path("generation", "t1", poll_url=poll_url, origin=ORIGIN) == poll_url


@pytest.mark.parametrize(
    "poll_url",
    [
        "https://evil.example/v1/images/generations/t1",
        "http://api.maxapi.dev/v1/images/generations/t1",
        "https://api.maxapi.dev:8443/v1/images/generations/t1",
        "https://user:pw@api.maxapi.dev/v1/images/generations/t1",
        "//evil.example/v1/images/generations/t1",
        "/\\evil.example/x",
        "v1/images/generations/t1",
        "ftp://api.maxapi.dev/t1",
        "",
        None,
    ],
)
def test_poll_url_elsewhere_falls_back_to_the_default_path(poll_url: str | None) -> None:
    assert poll_path("generation", "t1", poll_url=poll_url, origin=ORIGIN) == "/v1/images/generations/t1"


def test_origin_may_be_given_as_a_string() -> None:
    url = "https://api.maxapi.dev/v1/tasks/t1"
    assert poll_path("edit", "t1", poll_url=url, origin="https://api.maxapi.dev/") == url


def test_a_snapshot_knows_its_poll_path() -> None:
    snap = parse_task(task(status="queued", poll_url="https://evil.example/x"), kind="edit")
    assert snap.poll_path(ORIGIN) == "/v1/images/edits/t-1"


# -- the state machine ------------------------------------------------------------------


def snap(status: str | None = "queued", task_id: str = "t-1", **fields: Any) -> TaskSnapshot:
    obj: dict[str, Any] = {"id": task_id, **fields}
    if status is not None:
        obj["status"] = status
    if classify_status(status) is TaskState.SUCCEEDED:
        obj.setdefault("data", [{"url": CDN}])
    return parse_task(obj, kind="generation")


def test_a_new_machine_is_submitted() -> None:
    machine = TaskMachine("t-1", "generation")
    assert machine.state is MachineState.SUBMITTED
    assert not machine.done


def test_the_machine_follows_pending_running_succeeded() -> None:
    machine = TaskMachine("t-1", "generation")
    states = [machine.feed(snap(word)) for word in ("queued", "processing", "succeeded")]
    assert states == [TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert machine.state is MachineState.SUCCEEDED
    assert machine.done
    assert machine.polls == 3


def test_a_requeued_task_may_go_back_to_pending() -> None:
    machine = TaskMachine("t-1", "generation")
    machine.feed(snap("running"))
    assert machine.feed(snap("queued")) is TaskState.PENDING


def test_a_repeated_terminal_answer_is_accepted() -> None:
    machine = TaskMachine("t-1", "generation")
    machine.feed(snap("failed"))
    assert machine.feed(snap("FAILED")) is TaskState.FAILED


@pytest.mark.parametrize(
    ("first", "then"), [("succeeded", "running"), ("succeeded", "failed"), ("failed", "done")]
)
def test_a_finished_task_that_changes_its_mind_is_a_protocol_error(first: str, then: str) -> None:
    machine = TaskMachine("t-1", "generation")
    machine.feed(snap(first))
    with pytest.raises(TaskProtocolError, match="already"):
        machine.feed(snap(then))


def test_a_snapshot_of_another_task_is_a_protocol_error() -> None:
    machine = TaskMachine("t-1", "generation")
    with pytest.raises(TaskProtocolError, match="t-2"):
        machine.feed(snap("queued", task_id="t-2"))


def test_protocol_errors_are_response_errors() -> None:
    assert issubclass(TaskProtocolError, ResponseError)


def test_an_operation_machine_accepts_the_prefixed_name() -> None:
    machine = TaskMachine("operations/o1", "operation")
    assert machine.feed(parse_operation({"name": "operations/o1"})) is TaskState.RUNNING


def test_the_machine_remembers_progress_when_a_later_answer_omits_it() -> None:
    machine = TaskMachine("t-1", "generation")
    machine.feed(snap("running", progress=40))
    machine.feed(snap("running"))
    assert machine.progress == 40.0
    assert machine.last is not None
    assert machine.last.progress is None


def test_an_unknown_status_word_is_reported_once() -> None:
    machine = TaskMachine("t-1", "generation")
    machine.feed(snap("queued"))
    machine.feed(snap("Levitating"))
    first = machine.new_unknown_status
    machine.feed(snap("Levitating"))
    assert (first, machine.new_unknown_status) == ("Levitating", None)
    assert (machine.unknown_status, machine.unknown_status_poll) == ("Levitating", 2)


def test_expiry_marks_an_unfinished_task_expired() -> None:
    machine = TaskMachine("t-1", "generation")
    machine.feed(snap("running"))
    assert machine.expire() is MachineState.EXPIRED


def test_feeding_after_expiry_resumes_the_wait() -> None:
    machine = TaskMachine("t-1", "generation")
    machine.expire()
    assert machine.feed(snap("succeeded")) is TaskState.SUCCEEDED
    assert machine.state is MachineState.SUCCEEDED


def test_expiry_does_not_undo_a_finished_task() -> None:
    machine = TaskMachine("t-1", "generation")
    machine.feed(snap("succeeded"))
    assert machine.expire() is MachineState.SUCCEEDED


# -- resumable references and the timeout error ----------------------------------------


def test_a_task_ref_round_trips_through_json() -> None:
    ref = TaskRef(
        id="t-1",
        kind="edit",
        model="google/gemini-2.5-flash-image",
        aspect_ratio="16:9",
        poll_url="/v1/images/edits/t-1",
        created=1732400000,
        submitted_at=1732400000.5,
        idempotency_key="k-1",
    )
    data = json.loads(json.dumps(ref.to_dict()))
    assert data["version"] == 1
    assert TaskRef.from_dict(data) == ref


def test_a_task_ref_gives_the_image_call() -> None:
    call = TaskRef(id="t", kind="operation", aspect_ratio="1:1").image_call("default/model")
    assert (call.kind, call.model, call.aspect_ratio) == ("generation", "default/model", "1:1")


@pytest.mark.parametrize(
    "data",
    [
        None,
        "t-1",
        {},
        {"id": "t-1"},
        {"id": "t-1", "kind": "video"},
        {"id": 5, "kind": "edit"},
        {"id": " ", "kind": "edit"},
        {"id": "t-1", "kind": "edit", "version": 2},
        {"id": "t-1", "kind": "edit", "version": True},
        {"id": "t-1", "kind": "edit", "created": "yesterday"},
    ],
)
def test_junk_task_refs_are_rejected_naming_data(data: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        TaskRef.from_dict(data)
    assert info.value.argument == "data"


def test_task_timeout_error_is_a_timeout_carrying_the_handle() -> None:
    handle = object()
    err = TaskTimeoutError("still running", task_id="t-1", handle=handle)
    assert isinstance(err, APITimeoutError)
    assert isinstance(err, TimeoutError)
    assert (err.task_id, err.handle) == ("t-1", handle)
