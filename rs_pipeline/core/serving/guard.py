"""The checks that run before a request body is buffered: bearer token, then body size.

A pure ASGI middleware rather than FastAPI dependencies: a dependency runs after the body has
been read and parsed, which is exactly the memory an oversized or unauthenticated request must
not get. The body is read here, chunk by chunk, refused as soon as it passes the limit (a
chunked upload declares no Content-Length, so the declared size alone is not enough), and then
replayed to the app.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def send_json(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    """A `{"detail": ...}` response, FastAPI's error shape, sent straight over ASGI."""
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    raw_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def bearer_matches(scope: Scope, token: bytes) -> bool:
    """Whether the Authorization header is `Bearer <token>`, compared in constant time."""
    value = _header(scope, b"authorization") or b""
    scheme, _, given = value.partition(b" ")
    # compare_digest on the whole header even when the scheme is wrong: no early exit to time.
    return hmac.compare_digest(given.strip(), token) and scheme.lower() == b"bearer"


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or _TooLarge as soon as more than `limit` bytes have arrived."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class GuardMiddleware:
    """401 without the bearer token (when one is set), 413 for a body over `max_body_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        max_body_bytes: int,
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guarded = self.token is not None and scope["path"] not in self.open_paths
        if guarded and not bearer_matches(scope, self.token):
            detail = "missing or wrong bearer token: send Authorization: Bearer <token>"
            await send_json(send, 401, detail, {"www-authenticate": "Bearer"})
            return
        too_large = (
            f"request body is over {self.max_body_bytes} bytes (serving.max_body_bytes): "
            "send a smaller image"
        )
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_json(send, 413, too_large, {})
            return
        try:
            body = await read_body(receive, self.max_body_bytes)
        except _TooLarge:
            await send_json(send, 413, too_large, {})
            return
        except _Disconnected:  # nobody is left to answer
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the buffered body over once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
