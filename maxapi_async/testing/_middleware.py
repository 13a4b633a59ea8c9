"""What stands in front of every route: the request id, the API key check, and error rendering.

:func:`middleware` gives every answer an ``x-request-id`` and turns an :class:`~._errors.ApiError`
or an aiohttp HTTP error (an unknown path, a wrong method) into the error body of the route's
family (:func:`error_response`); the work in between (recording, faults, the route) is the
``dispatch`` it is given. :func:`check_auth` accepts the key the way MaxAPI does: a bearer
token everywhere, ``x-goog-api-key`` or ``?key=`` on the Gemini-native surface too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from ._errors import ApiError, error_body, is_native
from ._recording import Origin

__all__ = ["Dispatch", "check_auth", "error_response", "middleware"]

#: ``(origin, request, handler, request_id) -> answer``: what happens to a request in the middle.
Dispatch = Callable[[Origin, web.Request, Handler, str], Awaitable[web.StreamResponse]]


def middleware(origin: Origin, dispatch: Dispatch, next_request_id: Callable[[], str]) -> Middleware:
    """The middleware of one origin: a request id for every answer, errors in the route's style."""

    @web.middleware
    async def handle(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = next_request_id()
        try:
            response = await dispatch(origin, request, handler, request_id)
        except ApiError as exc:
            response = error_response(origin, request.path, exc.status, exc.message, exc.param, exc.code)
            response.headers.update(exc.headers)
        except web.HTTPException as exc:
            response = error_response(origin, request.path, exc.status, exc.reason, None, None)
            if exc.status == 405 and hdrs.ALLOW in exc.headers:
                response.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
        response.headers["x-request-id"] = request_id
        return response

    return handle


def error_response(
    origin: Origin,
    path: str,
    status: int,
    message: str,
    param: str | None,
    code: str | None,
) -> web.Response:
    """An error answer: plain text on the CDN, the route family's JSON body on the API."""
    if origin == "cdn":
        return web.Response(status=status, text=message)
    return web.json_response(error_body(path, status, message, param, code), status=status)


def check_auth(request: web.Request, api_key: str) -> None:
    """Raise a 401 :class:`~._errors.ApiError` unless ``request`` presents ``api_key``."""
    native = is_native(request.path)
    presented: list[str] = []
    authorization = request.headers.get(hdrs.AUTHORIZATION)
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            presented.append(token.strip())
    if native:
        presented.extend(request.headers.getall("x-goog-api-key", []))
        presented.extend(request.query.getall("key", []))
    if api_key in presented:
        return
    if not presented:
        message = "Missing API key: send 'Authorization: Bearer <key>'."
    else:
        message = "Incorrect API key provided."
    raise ApiError(401, message, code="invalid_api_key")
