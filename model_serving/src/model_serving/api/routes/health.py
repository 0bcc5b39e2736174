"""Open routes: ``GET /health/live``, ``GET /health/ready`` (``model_serving.readiness``) and
``GET /metrics`` (Prometheus)."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from model_serving.api.dependencies import LoadedModels
from model_serving.lifecycle import ServingState
from model_serving.metrics import ServingMetrics
from model_serving.readiness import Readiness
from model_serving.schemas import HealthResponse


def health_router(loaded: LoadedModels, readiness: Readiness, metrics: ServingMetrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live", response_model=HealthResponse, summary="The process answers")
    async def live() -> Response:
        return JSONResponse({"status": "alive", "checks": {}})

    @router.get(
        "/health/ready",
        response_model=HealthResponse,
        summary="Ready: a model is loaded and the online store answers",
        responses={503: {"model": HealthResponse, "description": "Not ready (checks say why)"}},
    )
    async def ready(state: Annotated[ServingState, Depends(loaded)]) -> Response:
        # the online store's ping is blocking I/O
        ok, checks = await asyncio.get_running_loop().run_in_executor(None, readiness.check, state)
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}
        },
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
