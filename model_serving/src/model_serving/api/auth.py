"""API keys and their scopes, declared once.

``ApiKeyAuth`` is both what /docs shows and what is enforced. A route under its prefix is
declared through ``ApiKeyAuth.router(scope)``, which attaches one FastAPI security dependency
(``ScopedApiKey``: the OpenAPI security scheme with the route's scope, the 401/403 responses).
``ApiKeyAuth.bind(app)`` reads those dependencies back from the app's routes, so the edge
middleware, which asks ``ApiKeyAuth.admit`` for every request under the prefix, refuses a
missing (401) or invalid key (403) and a key without the route's scope (403
``insufficient_scope``) before the body is read. The dependency checks the scope again when the
route runs (for a route the edge could not map). Keys come from the ``KeyRing``
(``model_serving.keys``): the bootstrap ``SERVING_API_KEY`` and the per-client keys.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from model_serving.api.errors import error_response
from model_serving.api.scope import CLIENT, REQUEST_ID
from model_serving.keys import Client, KeyRing
from model_serving.schemas import ErrorResponse

API_KEY_HEADER = "X-API-Key"
SCHEME_NAME = "APIKeyHeader"


class ScopedApiKey(APIKeyHeader):
    """The security dependency of a route: documents the key header and the route's scope,
    and refuses a request whose client lacks the scope."""

    def __init__(self, auth: ApiKeyAuth, scope: str) -> None:
        super().__init__(
            name=auth.header,
            scheme_name=SCHEME_NAME,
            auto_error=False,
            description="A serving API key: a per-client key (`model-serving keys create`) or "
            "SERVING_API_KEY of the platform's .env (every scope)",
        )
        self.auth = auth
        self.scope = scope

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        if self.auth.required:
            client: Client | None = request.scope.get(CLIENT)
            if client is None or self.scope not in client.scopes:
                raise StarletteHTTPException(403, f"the API key lacks the scope {self.scope!r}")
        return None


class ApiKeyAuth:
    header = API_KEY_HEADER

    def __init__(self, keys: KeyRing, *, required: bool = True, prefix: str = "/v1") -> None:
        self.keys = keys
        self.required = required
        self.prefix = prefix
        self._protected = f"{prefix}/"
        self._header = self.header.lower().encode("latin-1")
        #: path -> the scope its routes need (from ``bind``)
        self.scopes: dict[str, str] = {}
        self.responses: dict[int | str, dict[str, Any]] = {
            401: {"model": ErrorResponse, "description": "No API key"},
            403: {
                "model": ErrorResponse,
                "description": "Invalid or revoked API key (forbidden), or a key without the "
                "route's scope (insufficient_scope)",
            },
        }

    def router(self, scope: str, **kwargs: Any) -> APIRouter:
        """A router for routes that need a key with ``scope``: under the prefix, documented."""
        return APIRouter(
            prefix=self.prefix,
            dependencies=[Security(ScopedApiKey(self, scope), scopes=[scope])],
            responses=self.responses,
            **kwargs,
        )

    def bind(self, app: FastAPI) -> None:
        """Learn each protected path's scope from its route's ``ScopedApiKey``."""
        for route in app.routes:
            if isinstance(route, APIRoute):
                for dependency in route.dependant.dependencies:
                    if isinstance(dependency.call, ScopedApiKey):
                        self.scopes[route.path] = dependency.call.scope

    def protects(self, path: str) -> bool:
        return self.required and path.startswith(self._protected)

    async def admit(self, scope: Scope, headers: dict[bytes, bytes]) -> JSONResponse | None:
        """The 401/403 answer for a request, or None when it may pass (its ``Client`` is then
        in the ASGI scope)."""
        path: str = scope["path"]
        if not self.protects(path):
            return None
        rid = scope[REQUEST_ID]
        supplied = headers.get(self._header)
        if not supplied:
            return error_response(
                401,
                "unauthorized",
                f"missing API key: send it in the {self.header} header",
                rid,
                headers={"WWW-Authenticate": self.header},
            )
        presented = supplied.decode("latin-1")
        client, needs_scrypt = self.keys.quick(presented)
        if needs_scrypt:  # tens of milliseconds, once per key and process: off the event loop
            client = await run_in_threadpool(self.keys.verify, presented)
        if client is None:
            return error_response(403, "forbidden", "invalid API key", rid)
        scope[CLIENT] = client
        needed = self.scopes.get(path)
        if needed is not None and needed not in client.scopes:
            return error_response(
                403,
                "insufficient_scope",
                f"the API key {client.name!r} lacks the scope {needed!r} this route needs "
                f"(it has: {', '.join(sorted(client.scopes))})",
                rid,
            )
        return None
