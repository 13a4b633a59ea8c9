"""The pure protocol: everything the client knows about MaxAPI's wire format, with no I/O.

Requests (:mod:`.calls`, :mod:`.options`, :mod:`.openai_request`, :mod:`.gemini_request`),
answers (:mod:`.convert`, the one cattrs converter; :mod:`.openai_answer`, :mod:`.gemini`,
:mod:`.gemini_answer`, :mod:`.assets`, :mod:`.models`), queued tasks and their state machine
(:mod:`.tasks`, :mod:`.task_objects`), errors and errors from responses (:mod:`.errors`, :mod:`.calls`), retry and poll
decisions (:mod:`.policy`), the model table and prices (:mod:`.catalog`, :mod:`.pricing`), image
headers (:mod:`.images`), origins (:mod:`.urls`) and key redaction (:mod:`.redact`).

Nothing here opens a socket, reads a file or sleeps, and nothing here imports from the layers
above it (transport, client, batch, command line).
"""
