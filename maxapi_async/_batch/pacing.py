"""Batch submissions paused while the service says to come back later (``Retry-After``)."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

import anyio

from .._protocol.errors import APIError

__all__ = ["SubmissionPause"]

T = TypeVar("T")


class SubmissionPause:
    """Every submission of a batch waits while a pause the service asked for lasts.

    A submission refused with a ``Retry-After`` (a status in ``retry_statuses``: a 429, or a
    5xx that says when to come back; neither was carried out, so neither is charged) pauses
    every submission for that long, and that submission is made again after the pause. Tasks
    already submitted keep polling meanwhile. A pause that does not fit in what is left of the
    ``allowance`` (the client's ``task_timeout``; ``None``: no limit) stops submissions: that
    submission and every later one fail with that error, which says when to rerun.
    """

    def __init__(self, retry_statuses: Collection[int], allowance: float | None) -> None:
        self._retry_statuses = retry_statuses
        self._allowance = allowance
        self._resume_at = 0.0
        self._paused = 0.0
        self._stopped: APIError | None = None

    async def run(self, submit: Callable[[], Awaitable[T]]) -> T:
        """``await submit()``, never before the service said it would take submissions again."""
        while True:
            while True:
                if self._stopped is not None:
                    raise self._stopped.with_traceback(None)
                wait = self._resume_at - time.monotonic()
                if wait <= 0:
                    break
                await anyio.sleep(wait)
            try:
                return await submit()
            except APIError as exc:
                if not self._pause_for(exc):
                    raise

    def _pause_for(self, exc: APIError) -> bool:
        """Whether ``exc`` paused submissions (then the item is submitted again); ``False``
        when it is an ordinary failure. A pause too long stops submissions and raises."""
        hint = exc.retry_after
        if hint is None or exc.status not in self._retry_statuses:
            return False
        now = time.monotonic()
        added = max(0.0, now + hint - max(self._resume_at, now))
        allowance = self._allowance
        if allowance is None or self._paused + added <= allowance:
            self._paused += added
            self._resume_at = max(self._resume_at, now + hint)
            return True
        if self._stopped is None:
            left = max(0.0, allowance - self._paused)
            rerun = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=hint)
            stopped = type(exc)(
                f"submissions stopped: the service asked for a pause of {hint:g} s (Retry-After), "
                f"more than the {left:g} s this batch may still pause (the client's task_timeout); "
                f"nothing more was submitted. Rerun after {rerun.isoformat(timespec='seconds')} "
                "(with the same journal, finished items are skipped)",
                status=exc.status,
                code=exc.code,
                request_id=exc.request_id,
                body=exc.body,
                retry_after=hint,
            )
            stopped.__cause__ = exc
            self._stopped = stopped
        raise self._stopped.with_traceback(None)
