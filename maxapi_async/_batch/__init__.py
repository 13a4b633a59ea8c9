"""Batches: the runner (:mod:`.runner`), its items, outcomes and summary (:mod:`.items`),
submission pauses (:mod:`.pacing`), and the store a batch's state goes through
(:mod:`.store`, the interface) with its two implementations: the JSON-lines journal
(:mod:`.journal`, one machine) and Redis (:mod:`.redis_store`, with :mod:`.redis_client`
and :mod:`.redis_scripts`; redis-py is imported on first connection).

It sits on the client; only the blocking facade and the command line import it.
"""
