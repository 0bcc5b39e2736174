"""The edge: one plain-ASGI middleware that runs before any routing or body parsing.

Per HTTP request: a request id (the client's ``X-Request-ID`` when valid, else a new one; echoed
in the answer), the API key and its scope (``ApiKeyAuth``: 401/403), the body size (413, by
Content-Length or while streaming) and content type of JSON routes (415), the in-flight gauge,
the request counter and latency histogram (by route, method, status, answering model version and
client; a method outside ``METHODS`` is labelled ``other``) and one JSON access-log line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops_common.logs import request_id_var
from model_serving.api.auth import ApiKeyAuth
from model_serving.api.errors import error_response
from model_serving.api.scope import ANSWER_REQUEST_ID, MODEL_VERSION, REQUEST_ID, client_name
from model_serving.metrics import NO_CLIENT, NO_MODEL, ServingMetrics
from model_serving.schemas import REQUEST_ID_PATTERN

access_log = logging.getLogger("model_serving.access")

#: the ``route`` label of the request metrics (any other path is "other", /docs/* is "/docs")
ROUTES = {
    "/v1/predict",
    "/v1/feedback",
    "/v1/model",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/docs",
    "/openapi.json",
}
#: the ``method`` label's values (any other method the client sends is "other")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: routes that take a JSON body (the edge checks its content type before routing)
BODY_ROUTES = {("POST", "/v1/predict"), ("POST", "/v1/feedback")}
#: routes left out of the access log (scraped or polled all the time)
QUIET_ROUTES = {"/metrics", "/health/live"}
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        auth: ApiKeyAuth,
        metrics: ServingMetrics,
        max_body_bytes: int,
        access_log: bool,
    ) -> None:
        self.app = app
        self.auth = auth
        self.metrics = metrics
        self.limit = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        path: str = scope["path"]
        headers = dict(scope["headers"])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        scope[REQUEST_ID] = request_id
        token = request_id_var.set(request_id)
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                rid = scope.get(ANSWER_REQUEST_ID, request_id)
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", str(rid).encode("latin-1")),
                ]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            problem: ASGIApp | None = await self.auth.admit(scope, headers)
            if problem is None:
                problem = self._check(scope, path, headers)
            if problem is not None:
                await problem(scope, receive, send_wrapper)
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            self._done(scope, path, status_holder[0], time.perf_counter() - began)
            request_id_var.reset(token)

    def _done(self, scope: Scope, path: str, status: int, elapsed: float) -> None:
        """Count, time and log one finished request."""
        route = path if path in ROUTES else ("/docs" if path.startswith("/docs") else "other")
        version = scope.get(MODEL_VERSION, NO_MODEL)
        method = scope["method"] if scope["method"] in METHODS else "other"
        client = client_name(scope) or NO_CLIENT
        counter, histogram = self.metrics.request(route, method, str(status), version, client)
        counter.inc()
        histogram.observe(elapsed)
        if self.access_log and route not in QUIET_ROUTES:
            access_log.info(
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "model_version": version,
                    "client": client,
                    "request_id": scope.get(ANSWER_REQUEST_ID, scope[REQUEST_ID]),
                },
            )

    def _check(self, scope: Scope, path: str, headers: dict[bytes, bytes]) -> ASGIApp | None:
        """The answer that refuses the request before routing, or None when it may pass."""
        rid = scope[REQUEST_ID]
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return error_response(400, "invalid_request", "Content-Length is not a number", rid)
            if size > self.limit:
                return self._too_large(rid)
        if (scope["method"], path) in BODY_ROUTES:
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json" and not (
                ctype.startswith(b"application/") and ctype.endswith(b"+json")
            ):
                shown = ctype.decode("latin-1") or "none"
                return error_response(
                    415,
                    "unsupported_media_type",
                    f"Content-Type must be application/json (got {shown})",
                    rid,
                )
        return None

    def _too_large(self, rid: str) -> JSONResponse:
        return error_response(
            413, "body_too_large", f"request body larger than {self.limit} bytes", rid
        )

    def _limited(self, receive: Receive) -> Receive:
        seen = [0]
        limit = self.limit

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    # an HTTPException: FastAPI re-raises it from its body reading, and the
                    # app's handler answers 413
                    raise StarletteHTTPException(413, f"request body larger than {limit} bytes")
            return message

        return wrapped
