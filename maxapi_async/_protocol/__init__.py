"""The pure protocol: everything the client knows about MaxAPI's wire format, with no I/O.

* requests: :mod:`.calls` (request specs, input checks), :mod:`.options`,
  :mod:`.openai_request`, :mod:`.gemini_request`;
* answers: :mod:`.convert` (the one JSON decoder and the one cattrs converter),
  :mod:`.openai_answer`, :mod:`.gemini`, :mod:`.gemini_answer`, :mod:`.assets`, :mod:`.models`;
* queued tasks: :mod:`.tasks` (states, snapshots, the state machine, where to poll) and
  :mod:`.task_objects` (reading task objects);
* errors: :mod:`.errors`, and the errors of answers in :mod:`.calls`;
* decisions and data: :mod:`.policy` (retry and poll), :mod:`.catalog` (models),
  :mod:`.pricing`, :mod:`.images` (image headers), :mod:`.urls` (origins),
  :mod:`.redact` (the API key kept out of everything read).

Nothing here opens a socket, reads a file or sleeps, and nothing here imports from the layers
above it (transport, client, batch, command line).
"""
