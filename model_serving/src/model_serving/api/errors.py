"""Error bodies: every error is JSON ``{"error": code, "message": what is wrong, "request_id",
"details"?}``, whichever layer found it (the edge, FastAPI's validation, a route, the predictor).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model_serving.api.scope import REQUEST_ID, answer_request_id
from model_serving.predictor import (
    ModelFailed,
    NoModel,
    NoScorableCandidates,
    OnlineStoreUnavailable,
    PredictionError,
)
from model_serving.schemas import ErrorResponse

log = logging.getLogger("model_serving.api")

#: the status code of each way a prediction can fail
PREDICTION_STATUS: dict[type[PredictionError], int] = {
    NoModel: 503,
    OnlineStoreUnavailable: 503,
    NoScorableCandidates: 409,
    ModelFailed: 503,
}
#: seconds a client waits before asking again after a 503 (store down, no model yet)
RETRY_AFTER_S = "1"
HTTP_ERROR_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    400: "invalid_request",
    403: "insufficient_scope",
    413: "body_too_large",
}
#: documented on the routes that take a JSON body
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    415: {"model": ErrorResponse, "description": "Content-Type is not application/json"},
    422: {"model": ErrorResponse, "description": "Malformed request (the message says what)"},
    400: {"model": ErrorResponse, "description": "Body is not valid JSON"},
}


def error_response(
    status: int,
    error: str,
    message: str,
    request_id: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message, "request_id": request_id}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def validation_message(errors: Sequence[Any]) -> tuple[int, str]:
    """The status (400 for JSON that does not parse, else 422) and one message naming every
    problem of a request that FastAPI's validation refused."""
    problems = []
    status = 422
    for error in errors:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        if error.get("type") == "json_invalid":
            status = 400
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            problems.append(f"body is not valid JSON: {reason}")
        elif error.get("type") == "missing" and loc == "body":
            problems.append("body: a JSON object is required")
        else:
            message = str(error.get("msg", "invalid"))
            message = message.removeprefix("Value error, ")
            problems.append(f"{loc}: {message}")
    return status, "; ".join(problems)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    status, message = validation_message(exc.errors())
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "type": e.get("type"), "msg": str(e.get("msg"))}
        for e in exc.errors()
    ]
    return error_response(
        status,
        "invalid_json" if status == 400 else "invalid_request",
        message,
        request.scope.get(REQUEST_ID),
        details,
    )


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(
        exc.status_code,
        HTTP_ERROR_CODES.get(exc.status_code, "http_error"),
        str(exc.detail),
        request.scope.get(REQUEST_ID),
        headers=getattr(exc, "headers", None),
    )


async def prediction_error(request: Request, exc: PredictionError) -> JSONResponse:
    status = PREDICTION_STATUS.get(type(exc), 500)
    return error_response(
        status,
        exc.code,
        exc.message,
        answer_request_id(request.scope),
        exc.details,
        headers={"Retry-After": RETRY_AFTER_S} if status == 503 else None,
    )


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(
        500, "internal_error", "internal error; see the service log", request.scope.get(REQUEST_ID)
    )


def install_error_handlers(app: FastAPI) -> None:
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(StarletteHTTPException)(http_error)
    app.exception_handler(PredictionError)(prediction_error)
    app.exception_handler(Exception)(unexpected)
