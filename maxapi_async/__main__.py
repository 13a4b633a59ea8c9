"""``python -m maxapi_async``: the ``maxapi-async`` command line."""

import sys

from ._cli.commands import main

sys.exit(main())
