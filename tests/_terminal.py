"""A process on a real pseudo-terminal, and what its screen shows.

:class:`Terminal` starts a command with its stdin, stdout and stderr on the slave side of a
pty (``pty.openpty``: ``isatty()`` is true there, as in a user's shell), reads the master side
in a thread and feeds a small :class:`Screen` model: printable text, ``\\r``, ``\\n``,
backspace, line wrap, and the erase-line sequences (``ESC [ K`` / ``ESC [ 2K``); other escape
sequences are dropped. Enough to assert on what a person would see.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Mapping, Sequence

_CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")


class Screen:
    """The text a terminal of ``columns`` shows (every line kept: no scrolling away)."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0

    def _line(self) -> list[str]:
        while len(self.lines) <= self.row:
            self.lines.append([])
        return self.lines[self.row]

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                match = _CSI.match(text, i)
                if match is None:  # an escape we do not model (or cut short): skip the ESC
                    i += 1
                    continue
                if match.group(2) == "K":
                    line = self._line()
                    if match.group(1) == "2":
                        line.clear()
                    else:
                        del line[self.col :]
                i = match.end()
                continue
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
                self._line()
            elif ch == "\b":
                self.col = max(0, self.col - 1)
            elif ch >= " ":
                if self.col >= self.columns:  # auto-wrap
                    self.row += 1
                    self.col = 0
                line = self._line()
                while len(line) < self.col:
                    line.append(" ")
                if self.col < len(line):
                    line[self.col] = ch
                else:
                    line.append(ch)
                self.col += 1
            i += 1

    def text(self) -> str:
        """The screen, one line per row, trailing spaces and empty last rows removed."""
        rows = ["".join(line).rstrip() for line in self.lines]
        while rows and not rows[-1]:
            rows.pop()
        return "\n".join(rows)


class Terminal:
    """``argv`` running on a pty of ``columns`` x ``rows``; :attr:`screen` is what it shows."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str],
        columns: int = 120,
        rows: int = 40,
    ) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self._master = master
        self.screen = Screen(columns)
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            list(argv), stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd, close_fds=True
        )
        os.close(slave)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: the process closed the terminal
                return
            if not data:
                return
            with self._lock:
                self.screen.feed(data.decode("utf-8", "replace"))

    def text(self) -> str:
        """What the screen shows now."""
        with self._lock:
            return self.screen.text()

    def wait_for(self, condition: Callable[[str], bool], timeout: float = 10.0) -> str:
        """The screen, once ``condition(screen)`` holds (``AssertionError`` after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.text()
            if condition(shown):
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was expected; it shows:\n{shown}")
            if self.process.poll() is not None:
                self._reader.join(2)
                shown = self.text()
                if condition(shown):
                    return shown
                raise AssertionError(f"the process exited ({self.process.returncode}); the screen:\n{shown}")
            time.sleep(0.02)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the process (as the terminal sends it to its foreground process)."""
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 20.0) -> int:
        """The exit code, once the process ended and its output was read."""
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)
        os.close(self._master)
