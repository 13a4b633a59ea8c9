"""``python -m maxapi_async``: the ``maxapi-async`` command line."""

import sys

from ._cli import main

sys.exit(main())
