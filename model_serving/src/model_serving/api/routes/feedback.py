"""``POST /v1/feedback``: the label of a booking this service answered
(``model_serving.feedback``); anything else is a 409 naming why (the body is valid: it conflicts
with what this service answered)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from model_serving.api.auth import ApiKeyAuth
from model_serving.api.errors import BODY_ERRORS, error_response
from model_serving.api.scope import answered
from model_serving.feedback import FeedbackRecorder, FeedbackRejected
from model_serving.metrics import NO_MODEL
from model_serving.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse

RESPONSES: dict[int | str, dict[str, Any]] = {
    **BODY_ERRORS,
    409: {
        "model": ErrorResponse,
        "description": "Feedback this service did not ask for: a request id it did not answer "
        "or no longer remembers (unknown_request), "
        "answered longer ago than the feedback window (expired), or a driver that answer did "
        "not rank (not_a_candidate)",
    },
}


def feedback_router(auth: ApiKeyAuth, recorder: FeedbackRecorder) -> APIRouter:
    router = auth.router("feedback", tags=["prediction"])

    @router.post(
        "/feedback",
        status_code=202,
        response_model=FeedbackResponse,
        summary="Report whether the trip was completed (the label)",
        responses=RESPONSES,
    )
    async def feedback(request: Request, body: FeedbackRequest) -> Response:
        try:
            model = recorder.record(body.request_id, body.driver_id, body.trip_completed)
        except FeedbackRejected as exc:
            answered(request.scope, body.request_id, NO_MODEL)
            return error_response(409, exc.reason, exc.message, body.request_id)
        answered(request.scope, body.request_id, model["version"])
        return JSONResponse(
            {"status": "accepted", "request_id": body.request_id, "model": model},
            status_code=202,
        )

    return router
