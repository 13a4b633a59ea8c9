"""Every Python example in README.md and examples/ runs, against FakeMaxAPI, in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from maxapi_async.testing import FakeMaxAPI

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
# What an example shows, written above it as comments GitHub does not render:
# <!-- expect: TEXT --> (in its output) and <!-- expect on a second run: TEXT -->.
EXPECT = re.compile(r"<!-- expect( on a second run)?: (.*) -->")

# Runs one block: top-level `await` is allowed (notebook style); a block that defines an
# `app` (web quickstarts: aiohttp or FastAPI) is then served in-process and its /generate route called.
RUNNER = r"""
import ast, asyncio, inspect, sys
with open(sys.argv[1]) as fh:
    src = fh.read()
code = compile(src, "README example", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
ns = {"__name__": "readme_example"}
if code.co_flags & inspect.CO_COROUTINE:
    asyncio.run(eval(code, ns))
else:
    exec(code, ns)
app = ns.get("app")
if app is not None and type(app).__module__.startswith("fastapi"):
    from fastapi.testclient import TestClient as ASGIClient
    with ASGIClient(app) as client:  # runs the lifespan: startup, then shutdown
        resp = client.get("/generate", params={"prompt": "a glass cube"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["url"].startswith("http://127.0.0.1:")
        bad = client.get("/generate", params={"prompt": " "})
        assert bad.status_code == 400, bad.text
elif app is not None:
    from aiohttp.test_utils import TestClient, TestServer
    async def check():
        async with TestClient(TestServer(app)) as client:
            resp = await client.get("/generate", params={"prompt": "a glass cube"})
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["url"].startswith("http://127.0.0.1:")
            bad = await client.get("/generate", params={"prompt": " "})
            assert bad.status == 400, await bad.text()
    asyncio.run(check())
print("EXAMPLE OK")
"""


def readme_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def expectations(index: int) -> tuple[list[str], list[str]]:
    """What the ``index``-th example must print: on its run, and on a second run in its folder."""
    text = (ROOT / "README.md").read_text()
    start = list(BLOCK.finditer(text))[index].start()
    first: list[str] = []
    again: list[str] = []
    for line in reversed(text[:start].splitlines()):
        match = EXPECT.fullmatch(line)
        if match is None:
            break
        (again if match.group(1) else first).insert(0, match.group(2))
    return first, again


def block_id(index: int) -> str:
    first = readme_blocks()[index].strip().splitlines()[0]
    return f"{index}:{first[:30]}"


# A block defining test functions is a test module: pytest runs it, under the plugin its style
# needs (its fake_maxapi fixture comes from this package's plugin, as in a user's suite).
TEST_FUNCTION = re.compile(r"^\s*(?:async )?def test_\w+\(", re.MULTILINE)


def pytest_style(source: str) -> str | None:
    """``"asyncio-auto"``, ``"asyncio"`` (pytest-asyncio, strict), ``"anyio"`` (anyio or plain
    tests), or ``None`` for a block that is a script."""
    if not TEST_FUNCTION.search(source):
        return None
    if 'asyncio_mode = "auto"' in source:
        return "asyncio-auto"
    return "asyncio" if "@pytest.mark.asyncio" in source else "anyio"


STYLE_OPTIONS = {
    "anyio": ["-p", "no:asyncio"],
    "asyncio": ["-p", "no:anyio", "-o", "asyncio_default_fixture_loop_scope=function"],
    "asyncio-auto": [
        "-p", "no:anyio", "-o", "asyncio_default_fixture_loop_scope=function", "-o", "asyncio_mode=auto",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def pytest_block_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[int, str]]:
    """Every test-module block, run by pytest once per style: block index -> (passed, report)."""
    blocks = {i: (pytest_style(src), src) for i, src in enumerate(readme_blocks())}
    outcomes: dict[int, tuple[int, str]] = {}
    for style, options in STYLE_OPTIONS.items():
        indexes = [i for i, (block_style, _) in blocks.items() if block_style == style]
        if not indexes:
            continue
        if style.startswith("asyncio") and importlib.util.find_spec("pytest_asyncio") is None:
            continue  # pytest-asyncio comes with the dev extra: these blocks are skipped without it
        folder = tmp_path_factory.mktemp(f"readme-{style}")
        for i in indexes:
            (folder / f"test_readme_block_{i}.py").write_text(blocks[i][1])
        (folder / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONWARNINGS", "MAXAPI_KEY", "MAXAPI_BASE_URL")
        }
        args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "--strict-markers", *options]
        done = subprocess.run(
            [sys.executable, *args],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        report = done.stdout + done.stderr
        for i in indexes:
            passed = len(re.findall(rf"^PASSED test_readme_block_{i}\.py::", report, re.MULTILINE))
            outcomes[i] = (passed, report)
    return outcomes


async def run_python(args: list[str], fake: FakeMaxAPI, cwd: Path, **extra_env: str) -> str:
    env = {**os.environ, "MAXAPI_KEY": fake.api_key, "MAXAPI_BASE_URL": fake.base_url, **extra_env}
    env.pop("PYTHONWARNINGS", None)
    with anyio.fail_after(60):
        done = await anyio.run_process([sys.executable, "-W", "error", *args], env=env, cwd=cwd, check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    return output


def test_readme_has_examples() -> None:
    assert len(readme_blocks()) >= 5


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    head = (ROOT / "README.md").read_text().split("```", 2)[1]
    assert "maxapi-async demo" in head
    assert "pip install -e '.[dev]' && pytest" in head


def test_readme_shows_the_fake_in_every_test_style() -> None:
    styles = [pytest_style(src) for src in readme_blocks()]
    assert {"anyio", "asyncio", "asyncio-auto"} <= set(styles)
    sources = "\n".join(readme_blocks())
    for needle in (
        "@pytest.mark.anyio",
        "@pytest.mark.asyncio",
        "unittest.TestCase",
        "openai.OpenAI",
        "genai.Client",
    ):
        assert needle in sources, needle


@pytest.mark.parametrize("index", range(len(readme_blocks())), ids=block_id)
async def test_readme_example_runs(
    index: int, fake_maxapi: FakeMaxAPI, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = readme_blocks()[index]
    if pytest_style(source) is not None:
        outcomes: dict[int, tuple[int, str]] = request.getfixturevalue("pytest_block_outcomes")
        if index not in outcomes:
            pytest.skip("needs pytest-asyncio (in the dev extra)")
        passed, report = outcomes[index]
        assert passed == len(TEST_FUNCTION.findall(source)), report
        return
    script = tmp_path / "example.py"
    script.write_text(source)
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    extra_env = {}
    if "RedisStore" in source:  # "Beyond one machine": a real Redis, a database of its own
        extra_env["REDIS_URL"] = request.getfixturevalue("redis_server").url(5)
    output = await run_python([str(runner), str(script)], fake_maxapi, tmp_path, **extra_env)
    assert "EXAMPLE OK" in output
    first, again = expectations(index)
    for text in first:
        assert text in output, f"the example should print {text!r}; it printed:\n{output}"
    if again:
        output = await run_python([str(runner), str(script)], fake_maxapi, tmp_path)
        for text in again:
            assert text in output, f"run again, the example should print {text!r}; it printed:\n{output}"


def test_the_examples_that_print_say_what_they_print() -> None:
    # An example whose point is its output (a size, a caught error) has its expectation above it.
    for index, source in enumerate(readme_blocks()):
        if "print(" in source and pytest_style(source) is None and "app = " not in source:
            assert expectations(index)[0], f"README example {block_id(index)} has no <!-- expect: ... -->"


async def test_the_quickstart_runs_against_maxapi_async_fake_server(tmp_path: Path) -> None:
    """As the README says: start ``maxapi-async fake-server``, paste its export line, run the example."""
    server = await anyio.open_process([sys.executable, "-m", "maxapi_async", "fake-server"], cwd=tmp_path)
    try:
        assert server.stdout is not None
        env: dict[str, str] = {}
        with anyio.fail_after(30):
            buffered = b""
            async for chunk in server.stdout:
                buffered += chunk
                exports = [line for line in buffered.decode().splitlines() if line.startswith("export ")]
                if exports and buffered.endswith(b"\n"):
                    break
        for line in exports:  # what a shell makes of: export NAME=value NAME=value
            env.update(word.split("=", 1) for word in shlex.split(line)[1:] if "=" in word)
        assert {"MAXAPI_BASE_URL", "MAXAPI_KEY"} <= set(env)
        (tmp_path / "example.py").write_text(readme_blocks()[0])
        (tmp_path / "runner.py").write_text(RUNNER)
        child_env = {k: v for k, v in os.environ.items() if k not in ("MAXAPI_KEY", "MAXAPI_BASE_URL")}
        with anyio.fail_after(60):
            done = await anyio.run_process(
                [sys.executable, "-W", "error", "runner.py", "example.py"],
                env={**child_env, **env},
                cwd=tmp_path,
                check=False,
            )
        output = done.stdout.decode() + done.stderr.decode()
        assert done.returncode == 0, output
        assert "1344 768" in output
        assert (tmp_path / "cube.png").read_bytes().startswith(b"\x89PNG")
    finally:
        server.terminate()
        await server.wait()
        await server.aclose()


async def test_demo_example_saves_real_images(fake_maxapi: FakeMaxAPI, tmp_path: Path) -> None:
    output = await run_python([str(ROOT / "examples" / "demo.py")], fake_maxapi, tmp_path)
    assert "1344x768" in output
    saved = sorted(p.name for p in (tmp_path / "maxapi-demo").iterdir())
    assert saved == [
        "batch-0.png",
        "batch-1.png",
        "batch-2.png",
        "batch-3.png",
        "beach-21x9.png",
        "cube-16x9.png",
        "cube-1x1.png",
        "cube-9x16.png",
        "gemini-3x2.png",
        "operation-5x4.png",
        "queued-4x3.png",
    ]
