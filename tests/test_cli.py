"""The ``maxapi-async`` command line, against FakeMaxAPI over real loopback HTTP.

Most tests call ``main(argv)`` in-process (the fake runs in a portal thread, since the
command runs its own event loop); a few run the real entry, ``python -m maxapi_async``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import anyio
import pytest
from _cli_harness import run, run_json, serve_fake

import maxapi_async
from maxapi_async._cli import commands as _cli
from maxapi_async._cli import input as _cli_input
from maxapi_async._cli.commands import main
from maxapi_async.testing import FakeMaxAPI, Fault, make_png, openai_error


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMaxAPI]:
    yield from serve_fake(monkeypatch, tmp_path)


# -- the entry points ---------------------------------------------------------------------


def test_console_script_is_main() -> None:
    (script,) = entry_points(group="console_scripts", name="maxapi-async")
    assert script.load() is main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("generate", "edit", "batch", "task", "sizes", "prices", "fake-server", "demo"):
        assert command in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert maxapi_async.__version__ in out


@pytest.mark.anyio
async def test_python_m_generates_against_the_fake(fake_maxapi: FakeMaxAPI, tmp_path: Path) -> None:
    env = {**os.environ, "MAXAPI_KEY": fake_maxapi.api_key, "MAXAPI_BASE_URL": fake_maxapi.base_url}
    argv = [
        sys.executable,
        "-m",
        "maxapi_async",
        "generate",
        "a glass cube",
        "-a",
        "16:9",
        "--json",
        "-o",
        "out",
    ]
    with anyio.fail_after(30):
        done = await anyio.run_process(argv, env=env, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr.decode()
    doc = json.loads(done.stdout)
    (image,) = doc["images"]
    assert (image["width"], image["height"]) == (1344, 768)
    assert (tmp_path / image["path"]).read_bytes().startswith(b"\x89PNG")


@pytest.mark.anyio
async def test_python_m_fails_with_one_line_and_exit_code_1(fake_maxapi: FakeMaxAPI, tmp_path: Path) -> None:
    env = {**os.environ, "MAXAPI_KEY": "sk-wrong", "MAXAPI_BASE_URL": fake_maxapi.base_url}
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "maxapi_async", "-q", "generate", "a cube"],
            env=env,
            cwd=tmp_path,
            check=False,
        )
    assert done.returncode == 1
    err = done.stderr.decode()
    assert err.startswith("maxapi-async: error: ")
    assert "HTTP 401" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# -- generate and edit -------------------------------------------------------------------------


def test_generate_prints_the_url_size_and_expiry(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "generate", "a glass cube", "--aspect-ratio", "16:9")
    assert code == 0, err
    assert "1344x768" in out
    assert fake.cdn_url in out
    assert "expires" in out
    assert "credits estimated" in err
    (request,) = fake.requests_to("/v1/images/generations")
    assert request.json["aspect_ratio"] == "16:9"


def test_generate_saves_without_overwriting(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, "generate", "A glass cube!", "-n", "2", "--out", str(tmp_path))[0] == 0
    assert run(capsys, "generate", "A glass cube!", "--out", str(tmp_path))[0] == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a-glass-cube-2.png", "a-glass-cube-3.png", "a-glass-cube.png"]


def test_generate_json_document(fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "generate", "a glass cube", "-a", "9:16", "--route-mode", "official-cheap")
    (image,) = doc["images"]
    assert (image["width"], image["height"]) == (768, 1344)
    assert image["url"].startswith(fake.cdn_url)
    assert image["path"] is None
    assert doc["cost"] == pytest.approx(0.024)
    assert doc["request_id"]


def test_inline_images_land_in_the_current_folder_without_out(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = run_json(capsys, "generate", "a cube", "--response-format", "b64_json")
    (image,) = doc["images"]
    assert image["url"] is None
    assert (tmp_path / image["path"]).read_bytes().startswith(b"\x89PNG")


def test_options_may_follow_the_command(fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "generate", "a cube", "--json", "-q", "--timeout", "30")
    assert code == 0, err
    assert json.loads(out)["images"]
    assert err == ""


def test_queued_generation_polls_until_done(fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "generate", "a cube", "-a", "4:3", "--queued")
    assert code == 0, err
    assert "1184x864" in out
    assert "waiting for generation task task_" in err
    assert fake.requests_to("/v1/images/generations/task_")


def test_no_wait_then_task_wait(fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    submitted = run_json(capsys, "generate", "a cube", "--no-wait")
    task_id = submitted["task"]["id"]
    assert submitted["wait"] == f"maxapi-async task wait {task_id} --kind generation"
    assert maxapi_async.TaskRef.from_dict(submitted["task"]).id == task_id

    code, out, err = run(capsys, "task", "status", task_id)
    assert code == 0, err
    assert out.startswith(f"{task_id}  generation  ")

    doc = run_json(capsys, "task", "wait", task_id, "--kind", "generation", "-a", "1:1", "-o", str(tmp_path))
    (image,) = doc["images"]
    assert (image["width"], image["height"]) == (1024, 1024)
    assert Path(image["path"]).exists()


def test_a_wait_that_times_out_says_how_to_resume(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.complete_after_polls = 1000
    code, _, err = run(capsys, "generate", "a cube", "--queued", "--timeout", "0.3")
    assert code == 1
    last = err.splitlines()[-1]
    assert last.startswith("maxapi-async: error: generation task task_")
    assert "collect it later with: maxapi-async task wait task_" in last


def test_task_wait_gives_up_after_the_task_timeout(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.complete_after_polls = 10**9  # processing forever
    task_id = run_json(capsys, "generate", "a cube", "--no-wait")["task"]["id"]
    started = time.monotonic()
    code, _, err = run(capsys, "task", "wait", task_id, "--task-timeout", "0.3")
    assert time.monotonic() - started < 3.0
    assert code == 1
    last = err.splitlines()[-1]
    assert last.startswith(f"maxapi-async: error: generation task {task_id} still processing after 0.")
    assert f"collect it later with: maxapi-async task wait {task_id}" in last


def test_task_wait_on_an_unknown_task_is_an_error(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "task", "wait", "task_nope", "--kind", "edit")
    assert code == 1
    assert err.splitlines()[-1].startswith("maxapi-async: error: ")
    assert "HTTP 404" in err


def test_edit_sends_every_reference(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(make_png(64, 48))
    second.write_bytes(make_png(64, 48))
    code, out, err = run(
        capsys, "edit", "put them on a beach", "-i", str(first), str(second), "-o", str(tmp_path)
    )
    assert code == 0, err
    (request,) = fake.requests_to("/v1/images/edits")
    assert [f.filename for f in request.files] == ["a.png", "b.png"]
    # No aspect ratio: the output follows the reference, and the size is read from the saved file.
    assert "x?" not in out
    assert str(tmp_path / "put-them-on-a-beach.png") in out


def test_edit_with_a_missing_file_is_a_usage_error(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "edit", "x", "-i", "no-such-file.png")
    assert code == 2
    assert "no-such-file.png" in err
    assert not fake.requests


def test_service_warnings_are_one_line(fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "generate", "a cube", "--resolution", "2K")
    assert code == 0
    assert "maxapi-async: warning: " in err
    assert "resolution" in err


# -- errors ----------------------------------------------------------------------------------


def test_missing_key_names_the_option_and_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MAXAPI_KEY", raising=False)
    code, _, err = run(capsys, "generate", "a cube")
    assert code == 2
    assert err.strip() == (
        "maxapi-async: error: no API key: pass --api-key KEY or set the MAXAPI_KEY environment variable"
    )


def test_bad_argument_values_exit_2(fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "generate", "a cube", "-a", "7:3")
    assert code == 2
    assert err.strip().startswith("maxapi-async: error: aspect_ratio:")
    assert run(capsys, "generate")[0] == 2  # argparse: the prompt is missing
    assert run(capsys, "generate", "x", "-n", "0")[0] == 2
    assert run(capsys, "generate", "x", "--timeout", "-1")[0] == 2
    assert not fake.requests


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate"], "the following arguments are required: prompt (see: maxapi-async generate --help)"),
        (["generate", "x", "-n", "0"], "n: must be an integer from 1 to 10, got 0"),
        (["batch", "p.txt", "--concurrency", "0"], "argument --concurrency: must be at least 1, got 0"),
        (["task", "wait"], "the following arguments are required: ID (see: maxapi-async task wait --help)"),
        (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
        (["generate", "x", "--route-mode", "fast"], "argument --route-mode: invalid choice: 'fast'"),
    ],
)
def test_usage_errors_are_one_line_without_a_usage_dump(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.setenv("MAXAPI_KEY", "sk-unused-key")
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("maxapi-async: error: ")
    assert message in line
    assert "usage:" not in err


def test_usage_errors_in_json_mode_give_the_error_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--json", "generate")
    assert code == 2
    assert json.loads(out) == {
        "error": {
            "message": "the following arguments are required: prompt (see: maxapi-async generate --help)",
            "exit_code": 2,
        }
    }


def test_service_errors_exit_1_with_a_json_error_document(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail_next(402, openai_error(402, "not enough credits", code="insufficient_credits"))
    code, out, err = run(capsys, "--json", "generate", "a cube")
    assert code == 1
    assert "not enough credits" in err
    error = json.loads(out)["error"]
    assert error["type"] == "InsufficientCreditsError"
    assert error["status"] == 402
    assert error["exit_code"] == 1


def test_api_key_option_wins_over_the_environment(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--api-key", "sk-other", "generate", "a cube")
    assert code == 1
    assert "HTTP 401" in err


def test_interrupt_exits_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "cmd_sizes", interrupted)
    code, _, err = run(capsys, "sizes")
    assert code == 130
    assert err.strip() == "maxapi-async: error: interrupted"


# -- batch ---------------------------------------------------------------------------------------


def write_batch(folder: Path) -> Path:
    (folder / "ref.png").write_bytes(make_png(32, 32))
    lines = [
        "# prompts, one per line",
        "a glass cube",
        "",
        "a glass sphere",
        json.dumps(
            {"prompt": "make it night", "images": ["ref.png"], "key": "night", "aspect_ratio": "16:9"}
        ),
        json.dumps({"contents": "a cube in a forest", "key": "native", "aspect_ratio": "3:2"}),
        json.dumps({"prompt": "two cubes", "n": 2, "route_mode": "official-cheap"}),
    ]
    path = folder / "prompts.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parse_batch_file_keys_and_defaults(tmp_path: Path) -> None:
    path = write_batch(tmp_path)
    items = _cli_input.parse_batch_file(
        path.read_text().splitlines(), base=tmp_path, defaults={"aspect_ratio": "1:1"}, name="prompts.txt"
    )
    assert [i.key for i in items] == ["0002", "0004", "night", "native", "0007"]
    plain, _, edit, native, several = items
    assert isinstance(plain, maxapi_async.GenerateRequest)
    assert plain.aspect_ratio == "1:1"
    assert isinstance(edit, maxapi_async.EditRequest)
    assert list(edit.images) == [tmp_path / "ref.png"]
    assert edit.aspect_ratio == "16:9"  # the line wins over the command's default
    assert isinstance(native, maxapi_async.ContentRequest)
    assert isinstance(several, maxapi_async.GenerateRequest)
    assert (several.n, several.route_mode) == (2, "official-cheap")


def test_batch_runs_saves_and_resumes_from_the_journal(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = write_batch(tmp_path)
    out, journal = tmp_path / "out", tmp_path / "run.jsonl"
    argv = [
        "batch",
        str(prompts),
        "--concurrency",
        "3",
        "--journal",
        str(journal),
        "--out",
        str(out),
        "-a",
        "1:1",
    ]
    doc = run_json(capsys, *argv)
    assert doc["summary"]["done"] == 5
    assert doc["summary"]["remaining"] == []
    assert [o["key"] for o in doc["outcomes"]] == ["0002", "0004", "night", "native", "0007"]
    # Each image names the file it was saved to (no "path": null beside a separate list).
    paths = [image["path"] for o in doc["outcomes"] for image in o["images"]]
    assert sorted(Path(p).name for p in paths) == sorted(p.name for p in out.iterdir())
    assert all("files" not in o for o in doc["outcomes"])
    assert sorted(p.name for p in out.iterdir()) == [
        "0002.png",
        "0004.png",
        "0007-0.png",
        "0007-1.png",
        "native.png",
        "night.png",
    ]
    submissions = len(fake.requests)

    again = run_json(capsys, *argv)
    assert again["summary"]["restored"] == 5
    assert {o["status"] for o in again["outcomes"]} == {"restored"}
    assert len(fake.requests) == submissions  # nothing sent twice


def test_batch_human_output(fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "batch", str(write_batch(tmp_path)))
    assert code == 0, err
    assert len(out.splitlines()) == 5
    assert all(line.startswith("done") for line in out.splitlines())
    assert "5 done, 0 from the journal, 0 failed, 0 skipped" in err


def test_batch_stopped_by_the_budget_exits_1(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\nthree\n")
    code, out, err = run(capsys, "--json", "batch", str(prompts), "--budget", "0.05", "--concurrency", "1")
    assert code == 1
    assert "the budget (0.050 credits) stopped the batch" in err
    summary = json.loads(out)["summary"]
    assert summary["stopped_by_budget"] is True
    assert summary["done"] == 1


UNPRICED = "google/gemini-3-pro-image-preview"


def test_batch_with_a_budget_refuses_a_model_without_a_price(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    code, _, err = run(capsys, "batch", str(prompts), "--budget", "5", "--model", UNPRICED)
    assert code == 2
    (error,) = [line for line in err.splitlines() if line.startswith("maxapi-async: error:")]
    assert UNPRICED in error
    assert "prices=" in error
    assert fake.requests == []


def test_batch_without_a_budget_says_what_its_credits_leave_out(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    doc = run_json(capsys, "batch", str(prompts), "--model", UNPRICED)
    assert (doc["summary"]["credits"], doc["summary"]["unpriced"]) == (0.0, 2)
    assert [o["cost"] for o in doc["outcomes"]] == [None, None]
    code, _, err = run(
        capsys, "batch", str(prompts), "--model", UNPRICED, "--route-mode", "official", "--no-journal"
    )
    assert code == 0, err
    assert "0.000 credits estimated (not counting 2 items of models without a price)" in err


def test_batch_on_a_journal_in_use_fails_at_once_with_one_line(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts, journal = tmp_path / "p.txt", tmp_path / "run.jsonl"
    prompts.write_text("one\n")
    arrived = threading.Event()

    def hold_the_first_submission(origin: str, method: str, path: str) -> Fault | None:
        if method != "POST" or arrived.is_set():
            return None
        arrived.set()
        return Fault(delay=60)  # cancelled with its connection when the holder dies

    fake.fault_source = hold_the_first_submission
    argv = ["batch", str(prompts), "--journal", str(journal)]
    holder = subprocess.Popen(
        [sys.executable, "-m", "maxapi_async", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert arrived.wait(30)
        code, out, err = run(capsys, *argv)
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    assert out == ""
    assert [line for line in err.splitlines() if "error" in line] == [
        f"maxapi-async: error: journal {journal} is in use by another batch, in process {holder.pid}: "
        "wait for it to end, or give this batch its own journal"
    ]
    assert sum(r.method == "POST" for r in fake.requests) == 1  # the holder's, and no other


def test_batch_reads_stdin(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("a cube\na sphere\n"))
    doc = run_json(capsys, "batch", "-")
    assert [o["key"] for o in doc["outcomes"]] == ["0001", "0002"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "stdin, line 1: not valid JSON"),
        ('{"prompt": 1}', 'needs a "prompt" string'),
        ('{"prompt": "x", "colour": "red"}', "unknown fields ['colour']"),
        ('{"prompt": "x", "images": []}', '"images" must be a path or a list of paths'),
        ("# only a comment", "no prompts"),
    ],
)
def test_bad_batch_lines_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    monkeypatch.setenv("MAXAPI_KEY", "sk-unused")
    monkeypatch.setattr(sys, "stdin", io.StringIO(line + "\n"))
    code, _, err = run(capsys, "batch", "-")
    assert code == 2
    assert message in err


def test_batch_status_line_on_a_terminal(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    assert main(["batch", str(prompts)]) == 0
    assert "\rbatch [" in terminal.getvalue()
    assert "] 2/2  submitted 2  running 0  done 2  failed 0" in terminal.getvalue()
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_batch_status_line_stays_off_a_terminal_and_with_q(
    fake: FakeMaxAPI, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\n")
    assert main(["batch", str(prompts)]) == 0
    assert "\r" not in capsys.readouterr().err


# -- tables, fake server, demo -------------------------------------------------------------------


def test_sizes_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sizes")
    assert code == 0
    assert "google/gemini-2.5-flash-image" in out
    assert "1344x768" in out
    assert "5504x3072" in out  # the 4K tier of gemini-3-pro-image-preview
    doc = run_json(capsys, "sizes", "--model", "gemini-2.5-flash-image")
    rows = doc["models"]["google/gemini-2.5-flash-image"]
    assert {"aspect_ratio": "21:9", "resolution": None, "width": 1536, "height": 672} in rows
    assert run(capsys, "sizes", "--model", "nope")[0] == 2


def test_prices_table_and_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices")
    assert code == 0
    assert "official-cheap" in out
    assert " official         0.040\n" in out  # money with a fixed number of decimals
    assert run(capsys, "prices", "-n", "10")[1].splitlines()[-1].endswith(": 0.400 credits")
    doc = run_json(capsys, "prices", "-n", "10", "--route-mode", "official-cheap")
    assert doc["estimate"]["credits"] == pytest.approx(
        maxapi_async.PRICES.estimate(maxapi_async.DEFAULT_MODEL, "official-cheap", 10)
    )
    assert {"model": maxapi_async.DEFAULT_MODEL, "route_mode": "official", "credits": 0.04} in doc["prices"]


def test_prices_for_a_model_without_a_price_fails_before_printing_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "prices", "-n", "3", "--model", UNPRICED)
    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"maxapi-async: error: no published price for {UNPRICED!r} yet, so no estimate "
        "(priced: google/gemini-2.5-flash-image)"
    )
    code, out, err = run(capsys, "prices", "-n", "3", "--model", "acme/unknown")
    assert (code, out) == (2, "")
    assert "unknown model 'acme/unknown' (known: google/gemini-2.5-flash-image" in err


def test_fake_server_serves_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "maxapi_async", "fake-server", "--json", "--complete-after-polls", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        assert info["base_url"].startswith("http://127.0.0.1:")
        assert info["cdn_url"].startswith("http://127.0.0.1:")
        with maxapi_async.MaxAPI(info["api_key"], base_url=info["base_url"]) as client:
            result = client.images.generate("a glass cube", aspect_ratio="16:9")
            assert result.images[0].size == (1344, 768)
            assert client.read(result.images[0]).startswith(b"\x89PNG")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "stopping; 1 API requests served" in err
    assert "Traceback" not in err


def test_demo_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "demo", "--out", str(tmp_path / "demo"))
    assert code == 0, err
    assert "1344x768" in out
    assert "11 images" in out
    assert len(list((tmp_path / "demo").iterdir())) == 11

    doc = run_json(capsys, "demo", "--out", str(tmp_path / "again"))
    assert {i["step"] for i in doc["images"]} == {
        "generate",
        "edit",
        "queued",
        "gemini",
        "operation",
        "batch",
    }
    assert doc["credits"] > 0
    assert all(Path(i["path"]).read_bytes().startswith(b"\x89PNG") for i in doc["images"])
