"""One ASGI middleware: request size cap, security headers, and request metrics."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from armscan.serve.service.metrics import Metrics

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
]


class _TooLarge(Exception):
    pass


class ServiceMiddleware:
    """Refuses bodies over ``max_body`` bytes with 413 (declared or streamed), adds headers, records metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        started = False
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(send)
            self._record(scope, 413, t0)
            return
        seen, refused = 0, False

        async def capped_receive() -> Message:
            # Chunked bodies have no Content-Length, so the cap trips while the app reads the body: inside
            # FastAPI's form parsing, which would turn any error into a 400. So answer 413 here, at once,
            # and drop whatever the app then sends about the body it could not read.
            nonlocal seen, refused, status
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    if not started and not refused:
                        refused, status = True, 413
                        await self._too_large(send)
                    raise _TooLarge
            return msg

        async def send_with_headers(msg: Message) -> None:
            nonlocal status, started
            if refused:
                return
            if msg["type"] == "http.response.start":
                status, started = msg["status"], True
                msg["headers"] = list(msg.get("headers", [])) + _HEADERS
                if scope["path"].startswith("/static/"):  # revalidate the page's code after an upgrade
                    msg["headers"].append((b"cache-control", b"no-cache"))
            await send(msg)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except _TooLarge:
            pass  # the 413 went out from capped_receive (or the app had already begun answering)
        finally:
            self._record(scope, status, t0)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than the {self.max_body // (1 << 20)} MiB limit"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *_HEADERS]})
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: Scope, status: int, t0: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(scope["method"], path, str(status)).inc()
        self.metrics.request_seconds.labels(path).observe(time.perf_counter() - t0)
