"""``POST /v1/predict``: rank a booking's candidate drivers (``model_serving.predictor``)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from model_serving.api.auth import ApiKeyAuth
from model_serving.api.errors import BODY_ERRORS
from model_serving.api.scope import REQUEST_ID, answered, client_name
from model_serving.predictor import Predictor
from model_serving.schemas import ErrorResponse, PredictResponse, predict_request_model

EXAMPLES: dict[str, Any] = {
    "three candidates": {
        "summary": "Rank three drivers",
        "value": {"request_id": "booking-2024-000123", "driver_ids": [1001, 1002, 1003]},
    },
    "no request id": {
        "summary": "Let the service generate the request id",
        "value": {"driver_ids": [1004, 1005]},
    },
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    **BODY_ERRORS,
    409: {
        "model": ErrorResponse,
        "description": "No candidate can be scored in the online store's current "
        "state: all unknown to it, or with features older than the view's TTL",
    },
    503: {
        "model": ErrorResponse,
        "description": "No model loaded yet, or the online store is down or did not answer "
        "within SERVING_FEATURE_READ_TIMEOUT_S (with Retry-After)",
    },
}


def predict_router(auth: ApiKeyAuth, predictor: Predictor, max_candidates: int) -> APIRouter:
    """The route. No FastAPI dependency beyond the API key's: each costs time on every call."""
    PredictRequest = predict_request_model(max_candidates)
    router = auth.router("predict", tags=["prediction"])

    @router.post(
        "/predict",
        response_model=PredictResponse,
        summary="Rank candidate drivers",
        responses=RESPONSES,
    )
    async def predict(
        request: Request,
        body: Annotated[PredictRequest, Body(openapi_examples=EXAMPLES)],  # type: ignore[valid-type]
    ) -> Response:
        scope = request.scope
        request_id: str = body.request_id or scope[REQUEST_ID]  # type: ignore[attr-defined]
        routing = predictor.route(request_id, client_name(scope))
        answered(scope, request_id, routing.model.version)
        return JSONResponse(await predictor.predict_async(routing, body.driver_ids))  # type: ignore[attr-defined]

    return router
