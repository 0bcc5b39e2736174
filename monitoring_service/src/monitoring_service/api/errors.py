"""Every error of the HTTP API is JSON ``{"error": code, "message": text naming the problem}``,
and every route documents each error status it can answer (``error_responses``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("monitoring_service.api")

#: codes of the errors Starlette raises itself (unknown route, wrong method)
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
#: a validation message names at most this many problems (a 10k-item payload stays short)
MAX_PROBLEMS = 10

#: what each error status means, for the OpenAPI document
ERROR_DESCRIPTIONS = {
    400: "Body is not JSON, is nested too deep or holds text that is not Unicode",
    401: "No usable credentials (with a `WWW-Authenticate` challenge)",
    403: "Wrong webhook secret",
    404: "No such window or report",
    413: "Body over `MONITORING_MAX_BODY_BYTES`",
    415: "Content-Type is not `application/json`",
    422: "A parameter or payload field breaks a rule (the message names it)",
}


class ErrorBody(BaseModel):
    """An error answer."""

    error: str
    message: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that can answer these error statuses."""
    return {s: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}


class ApiError(Exception):
    """An answer refused with a status, a code and a message (and maybe headers)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def problems(exc: ValidationError | RequestValidationError) -> str:
    """``field.path: what is wrong`` of the first ``MAX_PROBLEMS`` validation errors, joined
    with ``; `` (and how many more there are)."""
    errors = exc.errors()
    named = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
        for e in errors[:MAX_PROBLEMS]
    )
    more = len(errors) - MAX_PROBLEMS
    return f"{named}; and {more} more" if more > 0 else named


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # the headers carry the 405's `Allow`
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", problems(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(500, "internal_error", "internal error; see the service log")
