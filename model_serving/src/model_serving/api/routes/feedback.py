"""``POST /v1/feedback``: the label of a booking (``model_serving.feedback``)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from model_serving.api.auth import ApiKeyAuth
from model_serving.api.errors import BODY_ERRORS
from model_serving.api.scope import answered
from model_serving.feedback import FeedbackRecorder
from model_serving.metrics import NO_MODEL
from model_serving.schemas import FeedbackRequest, FeedbackResponse


def feedback_router(auth: ApiKeyAuth, recorder: FeedbackRecorder) -> APIRouter:
    router = auth.router(tags=["prediction"])

    @router.post(
        "/feedback",
        status_code=202,
        response_model=FeedbackResponse,
        summary="Report whether the trip was completed (the label)",
        responses=BODY_ERRORS,
    )
    async def feedback(request: Request, body: FeedbackRequest) -> Response:
        model = recorder.record(body.request_id, body.driver_id, body.trip_completed)
        answered(request.scope, body.request_id, model["version"] if model else NO_MODEL)
        return JSONResponse(
            {"status": "accepted", "request_id": body.request_id, "model": model},
            status_code=202,
        )

    return router
