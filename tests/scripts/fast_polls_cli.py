"""The ``maxapi-async`` command line with a poll schedule for the fake (its tasks end in
milliseconds); the same code as ``python -m maxapi_async`` otherwise.

    python fast_polls_cli.py ARGS...
"""

from __future__ import annotations

import functools
import sys

import maxapi_async
from maxapi_async._cli import commands as _cli
from maxapi_async._cli import input as _cli_input

POLLS = maxapi_async.PollPolicy(earliest=0.0, latest=0.05, spacing=0.02, initial=0.02, jitter=0.0)

_cli_input.AsyncMaxAPI = functools.partial(maxapi_async.AsyncMaxAPI, poll_policy=POLLS)  # type: ignore[misc]
sys.exit(_cli.main())
