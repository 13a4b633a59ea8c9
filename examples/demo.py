"""See maxapi_async work with no key and no network: a fake MaxAPI on loopback, the real client.

    python examples/demo.py          # the same as: maxapi-async demo

Starts :class:`maxapi_async.testing.FakeMaxAPI` (a real HTTP server on 127.0.0.1 that speaks
MaxAPI's wire format and serves real PNGs), then drives the client through every path:
synchronous generations for three aspect ratios at once, an edit composing two of them, a
queued generation, a Gemini-native call, a queued Gemini operation and a small batch. The
images land in ``./maxapi-demo/``. The code is ``maxapi_async/_demo.py``.
"""

from __future__ import annotations

import sys

from maxapi_async._cli.commands import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
