"""Batches: the runner (:mod:`.runner`), its items (:mod:`.items`), the journal (:mod:`.journal`)
and submission pauses (:mod:`.pacing`).

It sits on the client; only the blocking facade and the command line import it.
"""
