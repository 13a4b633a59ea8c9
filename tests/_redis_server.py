"""A real ``redis-server`` for the tests: on a free loopback port, in a temporary folder, no persistence.

Tests that need one skip when ``redis-server`` is not installed, except under ``CI=true``
(where ``.ci/run`` installs it), where its absence fails them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "redis_server_or_skip", "running_redis"]


class RedisServer:
    """A started ``redis-server``: ``url`` (``redis://127.0.0.1:<port>/0``), ``port``, ``process``."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def command(self, *args: str) -> str:
        """One command over a raw socket (no redis-py needed), its reply's first line."""
        parts = [f"${len(a.encode())}\r\n{a}\r\n" for a in args]
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(f"*{len(args)}\r\n{''.join(parts)}".encode())
            return sock.recv(65536).decode("utf-8", "replace").split("\r\n")[0]


def redis_server_or_skip() -> str:
    """The path of ``redis-server``; skips the test when missing, fails it under ``CI=true``."""
    path = shutil.which("redis-server")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed (.ci/run installs it: apt-get install redis-server)")
        pytest.skip("redis-server is not installed")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[RedisServer]:
    """Start ``redis-server`` in ``folder`` and stop it on exit (a port taken meanwhile: another try)."""
    binary = redis_server_or_skip()
    for _ in range(5):
        port = _free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while process.poll() is None and not _answers(port):
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError("redis-server did not answer within 10 s")
            time.sleep(0.01)  # a process starting up: no signal to wait on but its port
        if process.poll() is None:
            break
    else:
        raise RuntimeError("redis-server did not start (no free port?)")
    try:
        yield RedisServer(process, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
