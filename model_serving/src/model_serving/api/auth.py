"""The API key, declared once.

``ApiKeyAuth`` is both what /docs shows and what is enforced: the routes under its prefix are
declared through ``ApiKeyAuth.router`` (which attaches the OpenAPI security scheme and the
401/403 responses), and the edge middleware asks the same object, for the same prefix, whether a
request may pass (``ApiKeyAuth.refusal``). The check runs at the edge, before the body is read:
a request without a valid key never gets its body parsed.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from model_serving.api.errors import error_response
from model_serving.schemas import ErrorResponse
from model_serving.settings import ServingSettings

API_KEY_HEADER = "X-API-Key"


class ApiKeyAuth:
    header = API_KEY_HEADER

    def __init__(self, key: str, *, required: bool = True, prefix: str = "/v1") -> None:
        self._key = key.encode() if key else None
        self.required = required
        self.prefix = prefix
        self._protected = f"{prefix}/"
        self._header = self.header.lower().encode("latin-1")
        self.scheme = APIKeyHeader(
            name=self.header,
            auto_error=False,
            description="The serving API key (SERVING_API_KEY in the platform's .env)",
        )
        self.responses: dict[int | str, dict[str, Any]] = {
            401: {"model": ErrorResponse, "description": "No API key"},
            403: {"model": ErrorResponse, "description": "Wrong API key"},
        }

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> ApiKeyAuth:
        return cls(
            settings.serving_api_key.get_secret_value(), required=settings.serving_auth_required
        )

    def router(self, **kwargs: Any) -> APIRouter:
        """A router for routes that need the key: under the prefix, documented as secured."""
        return APIRouter(
            prefix=self.prefix,
            dependencies=[Security(self.scheme)],
            responses=self.responses,
            **kwargs,
        )

    def protects(self, path: str) -> bool:
        return self.required and path.startswith(self._protected)

    def refusal(
        self, path: str, headers: dict[bytes, bytes], request_id: str
    ) -> JSONResponse | None:
        """The 401 (no key) or 403 (wrong key) answer for a request to ``path``, or None when
        it may pass."""
        if not self.protects(path):
            return None
        supplied = headers.get(self._header)
        if not supplied:
            return error_response(
                401,
                "unauthorized",
                f"missing API key: send it in the {self.header} header",
                request_id,
                headers={"WWW-Authenticate": self.header},
            )
        if self._key is None or not hmac.compare_digest(supplied, self._key):
            return error_response(403, "forbidden", "invalid API key", request_id)
        return None
