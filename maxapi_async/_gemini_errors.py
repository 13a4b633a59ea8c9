"""The error for a Gemini answer that came back (HTTP 200) without the output asked for.

Kept apart from :mod:`maxapi_async._errors` until it is merged into that tree, where it sits
directly under :class:`~maxapi_async.MaxAPIError`::

    MaxAPIError
    └── BlockedError        a Gemini-native answer without the image asked for, and why

It is not an :class:`~maxapi_async.APIError`: the service answered successfully, the model
declined. Retrying the same request usually gives the same answer.
"""

from __future__ import annotations

from typing import Any

from ._errors import MaxAPIError

__all__ = ["BlockedError"]


class BlockedError(MaxAPIError):
    """The model returned no image (or nothing at all) and said why.

    ``reason`` is the word the answer gave: a candidate's ``finishReason`` (``"IMAGE_SAFETY"``,
    ``"SAFETY"``, ``"PROHIBITED_CONTENT"``, ``"IMAGE_PROHIBITED_CONTENT"``, ``"NO_IMAGE"``,
    ``"IMAGE_OTHER"``, ...) or the prompt's ``promptFeedback.blockReason``. Two reasons are the
    client's own: ``"NO_CANDIDATES"`` (no candidates and no block reason) and ``"NO_IMAGE"``
    also when the model finished normally but sent no image where one was required.

    ``response`` is the parsed ``GenerateContentResponse`` (its ``.text`` often says more, and
    its ``.draft_parts`` hold any interim images), or the raw dict when it could not be parsed;
    ``request_id`` is the id the service logged the call under. Blocked calls are not charged.
    """

    def __init__(
        self,
        reason: str,
        message: str | None = None,
        *,
        request_id: str | None = None,
        response: Any = None,
    ) -> None:
        self.reason = reason
        self.message = message or f"the model returned no image ({reason})"
        self.request_id = request_id
        self.response = response
        super().__init__(self.message)

    def __str__(self) -> str:
        extra = f"reason={self.reason}"
        if self.request_id:
            extra += f", request_id={self.request_id}"
        return f"{self.message} ({extra})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r}, "
            f"request_id={self.request_id!r})"
        )
