"""The transport: the one place that knows aiohttp (:mod:`.http`), and file I/O off the loop (:mod:`.files`).

It imports the protocol layer and nothing above it.
"""
