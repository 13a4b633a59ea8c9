"""``maxapi-async``, the command line: commands (:mod:`.commands`), arguments and input files
(:mod:`.input`), what it prints (:mod:`.output`) and the demo (:mod:`.demo`). The top layer.
"""

from .commands import main

__all__ = ["main"]
