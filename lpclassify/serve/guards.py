"""Pure ASGI middleware that runs before any route: the API key and the request-body limit.

* :class:`ApiKeyGuard` -- ``Authorization: Bearer KEY`` on every route but ``/health`` (and CORS
  preflights). It keeps a SHA-256 digest of the key and compares digests with
  :func:`secrets.compare_digest`, so neither the key's value nor its length leaks through timing.
* :class:`BodyLimit` -- a body over ``max_bytes`` is answered 413 as soon as it is known to be
  (its declared length, or the bytes streamed so far), before the app sees it. A body is read
  as JSON whatever its declared type (``curl -d`` declares a form).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .protocol import error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = ("/health",)


async def send_error(send: Send, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(message, kind, status)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _digest(value: str | bytes) -> bytes:
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).digest()


class ApiKeyGuard:
    """Refuse (401) a request without the right bearer key, except on the open paths."""

    def __init__(self, app: ASGIApp, api_key: str, on_refused: Callable[[], None] | None = None) -> None:
        self.app = app
        self.digest = _digest(api_key)
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and secrets.compare_digest(_digest(token.strip()), self.digest):
            await self.app(scope, receive, send)
            return
        if self.on_refused is not None:
            self.on_refused()
        await send_error(send, 401, "unauthorized", "missing or wrong API key: send the header "
                         "'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})


class BodyLimit:
    """Answer 413 to a request body over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int, on_refused: Callable[[], None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    def _message(self) -> str:
        return (f"the request body is over {self.max_bytes} bytes; send fewer or shorter texts per request "
                "(or start the server with a higher --max-body-bytes)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        # Read the body here (it is small by definition) so an oversized one never reaches the app.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(_as_json(scope), replay, send)

    async def _refuse(self, send: Send) -> None:
        if self.on_refused is not None:
            self.on_refused()
        await send_error(send, 413, "too_large", self._message())



def _as_json(scope: Scope) -> Scope:
    """Every request body is JSON: one sent as a form (``curl -d``'s default type) is read as JSON too."""
    headers = list(scope.get("headers") or ())
    kind = dict(headers).get(b"content-type", b"")
    if scope.get("method") in ("POST", "PUT") and b"json" not in kind:
        headers = [(k, v) for k, v in headers if k != b"content-type"] + [(b"content-type", b"application/json")]
        scope = {**scope, "headers": headers}
    return scope
