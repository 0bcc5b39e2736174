"""``GET /v1/model``: the served versions, where the registry's aliases point, the traffic split."""

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from model_serving.api.auth import ApiKeyAuth
from model_serving.api.dependencies import LoadedModels
from model_serving.lifecycle import RegistryStatus, ServingState
from model_serving.schemas import ModelInfoResponse
from model_serving.settings import ServingSettings


def model_router(
    auth: ApiKeyAuth, loaded: LoadedModels, registry: RegistryStatus, settings: ServingSettings
) -> APIRouter:
    router = auth.router("admin", tags=["model"])

    @router.get(
        "/model",
        response_model=ModelInfoResponse,
        summary="Served model versions, registry aliases and traffic split",
    )
    async def model_info(state: Annotated[ServingState, Depends(loaded)]) -> Response:
        served = [m.describe() for m in (state.champion, state.challenger) if m is not None]
        return JSONResponse(
            {
                "name": settings.serving_model_name,
                "served": served,
                "registry": registry.describe(),
                "traffic": {
                    "canary_percent": settings.serving_canary_percent,
                    "shadow": settings.serving_shadow,
                    "challenger_loaded": state.challenger is not None,
                    "max_candidates": settings.serving_max_candidates,
                },
            }
        )

    return router
