"""Progress on a terminal: one status line on stderr, redrawn on a timer.

The line is redrawn every :data:`REDRAW_SECONDS` from the last state it was given, so its
clock moves while tasks poll and nothing else happens, and a thousand updates a second cost
a thousand assignments, not a thousand writes. It is drawn with a carriage return and
padding (no terminal library, no escape codes) and cut to the terminal's width, so it never
wraps. Off a terminal (a pipe, a file, a CI log), or when asked to be quiet, it writes
nothing at all.

:class:`BatchStatus` shows a batch's counts (``Batch(..., progress=True)`` and the command
line's ``batch``); :class:`StatusLine` with a ``render`` function shows anything else (the
command line's wait for a task). Lines printed through :meth:`StatusLine.line` appear above
the status line, which is redrawn below them.

Built in rather than tqdm: a status line of counts and a clock needs no progress-bar
library, and this one is in every install (tqdm was an optional extra, so a plain
``pip install`` had no progress at all) and redraws on its own timer (tqdm redraws only
when it is updated, so its clock stood still while tasks polled).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .._protocol.pricing import format_credits
from .items import BatchProgress

__all__ = ["REDRAW_SECONDS", "BatchStatus", "StatusLine", "clock", "on_terminal"]

#: How often a status line is redrawn, in seconds.
REDRAW_SECONDS = 0.25
_BAR_WIDTH = 20


def on_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a status line there is seen, not logged)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def clock(seconds: float) -> str:
    """Elapsed time as a clock: ``0:07``, ``12:03``, ``1:02:03``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns if columns > 0 else 80


class StatusLine:
    """One line on ``stream`` (default: ``sys.stderr``), redrawn every :data:`REDRAW_SECONDS`.

    ``render(elapsed)`` gives the text for the seconds since :meth:`start`. ``enabled``
    defaults to whether ``stream`` is a terminal; a disabled line writes nothing. The timer
    runs in the event loop that called :meth:`start`; :meth:`close` stops it and clears the
    line (idempotent).
    """

    def __init__(
        self,
        render: Callable[[float], str],
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
    ) -> None:
        self._render = render
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = on_terminal(self.stream) if enabled is None else enabled
        self._started = time.monotonic()
        self._drawn = 0  # characters of the line on screen
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        """Draw the line now and keep redrawing it (from within the running event loop)."""
        self._started = time.monotonic()
        if self.enabled and not self._closed:
            self._tick()

    def _tick(self) -> None:
        self.draw()
        self._timer = asyncio.get_running_loop().call_later(REDRAW_SECONDS, self._tick)

    def draw(self) -> None:
        """Redraw the line now."""
        if not self.enabled or self._closed:
            return
        text = self._render(time.monotonic() - self._started)
        text = text[: _width(self.stream) - 1]
        pad = " " * max(0, self._drawn - len(text))
        self._write(f"\r{text}{pad}")
        self._drawn = len(text)

    def _clear(self) -> None:
        if self._drawn:
            self._write("\r" + " " * self._drawn + "\r")
            self._drawn = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing, never fail the work
            self.enabled = False

    def line(self, text: str, file: TextIO | None = None) -> None:
        """Print ``text`` (to ``file``, default stdout) above the status line."""
        self._clear()
        print(text, file=file if file is not None else sys.stdout, flush=True)
        self.draw()

    def close(self, *, keep: bool = False) -> None:
        """Stop redrawing; clear the line, or with ``keep`` leave its last state on screen."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._closed and self.enabled:
            if keep:
                self.draw()
                self._write("\n")
                self._drawn = 0
            else:
                self._clear()
        self._closed = True


class BatchStatus(StatusLine):
    """A batch's status line: ``batch [####......] 7/20  submitted 12  running 5  done 6
    failed 1  skipped 0  credits 0.240  0:07``.

    :meth:`update` takes the batch's :class:`BatchProgress` (pass it as the batch's
    ``progress`` callback); the line shows the last one on its next redraw.
    """

    def __init__(self, total: int, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        super().__init__(self._text, stream, enabled=enabled)
        self.progress = BatchProgress(total, 0, 0, 0, 0, 0, 0.0)

    def update(self, progress: BatchProgress) -> None:
        self.progress = progress

    def _text(self, elapsed: float) -> str:
        p = self.progress
        ended = p.done + p.failed + p.skipped
        filled = _BAR_WIDTH * ended // p.total if p.total else _BAR_WIDTH
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        return (
            f"batch [{bar}] {ended}/{p.total}  submitted {p.submitted}  running {p.running}  "
            f"done {p.done}  failed {p.failed}  skipped {p.skipped}  "
            f"credits {format_credits(p.credits)}  {clock(elapsed)}"
        )
