"""``/v1/experiments`` (admin scope): create, start, stop and list the experiments of the served
model (``mlops_common.experiments``; stored in the experiment store).

Bad input is a clear 4xx and changes nothing: an invalid experiment (allocations that do not
sum to 1, duplicate arms, ...) 422; an arm whose version or alias does not exist 422; a name
that exists, a second running experiment on the same model, stopping one that does not run 409;
an unknown name 404; a registry that does not answer 503. The routes are plain functions (run
in the thread pool): the store and the registry block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_common.experiment_store import ExperimentConflict, ExperimentNotFound
from mlops_common.experiments import Experiment, ExperimentError, ExperimentSpec
from mlops_common.registry import RegistryUnavailable
from model_serving.api.auth import ApiKeyAuth
from model_serving.api.errors import BODY_ERRORS, error_response
from model_serving.experiments import ExperimentRouter, check_arms
from model_serving.schemas import ErrorResponse

EXAMPLE: dict[str, Any] = {
    "name": "ab-2026-12",
    "arms": [
        {"name": "control", "alias": "champion", "weight": 0.5},
        {"name": "treatment", "alias": "challenger", "weight": 0.5},
    ],
    "allocation": "fixed",
    "min_samples_per_arm": 1000,
    "guards": [{"metric": "latency_p99_ms", "threshold": 50}],
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    **BODY_ERRORS,
    404: {"model": ErrorResponse, "description": "No experiment of that name"},
    409: {"model": ErrorResponse, "description": "Conflicts with the stored experiments"},
    503: {"model": ErrorResponse, "description": "The registry or the store did not answer"},
}


class ExperimentName(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)


def _error(exc: Exception) -> Response:
    if isinstance(exc, ExperimentNotFound):
        return error_response(404, "experiment_not_found", str(exc))
    if isinstance(exc, ExperimentConflict):
        return error_response(409, "experiment_conflict", str(exc))
    if isinstance(exc, RegistryUnavailable):
        return error_response(503, "registry_unavailable", str(exc))
    return error_response(422, "invalid_experiment", str(exc))


def _answer(experiment: Experiment, status: int = 200) -> Response:
    return JSONResponse(experiment.model_dump(mode="json"), status_code=status)


def _transition(
    router_: ExperimentRouter, change: Callable[[str], Experiment], name: str
) -> Response:
    """Start or stop ``name`` in the store, then route by it at once (not at the next refresh)."""
    try:
        changed = change(name)
    except ExperimentError as exc:
        return _error(exc)
    router_.refresh()
    return _answer(changed)


def experiments_router(auth: ApiKeyAuth, router_: ExperimentRouter, model_name: str) -> APIRouter:
    router = auth.router("admin", tags=["experiments"])

    @router.get("/experiments", summary="Every experiment, oldest first", responses=RESPONSES)
    def list_experiments() -> Response:
        return JSONResponse([e.model_dump(mode="json") for e in router_.store().list()])

    @router.post(
        "/experiments",
        status_code=201,
        summary="Create an experiment (not started)",
        responses=RESPONSES,
    )
    def create(body: Annotated[dict[str, Any], Body(examples=[EXAMPLE])]) -> Response:
        try:
            spec = ExperimentSpec.model_validate({**body, "model_name": model_name})
        except ValidationError as exc:
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            return error_response(422, "invalid_experiment", message)
        try:
            check_arms(router_.manager_client(), spec)
            return _answer(router_.store().create(spec), 201)
        except (ExperimentError, RegistryUnavailable) as exc:
            return _error(exc)

    @router.post(
        "/experiments/start",
        summary="Start an experiment (routes within the refresh)",
        responses=RESPONSES,
    )
    def start(body: ExperimentName) -> Response:
        return _transition(router_, router_.store().start, body.name)

    @router.post("/experiments/stop", summary="Stop a running experiment", responses=RESPONSES)
    def stop(body: ExperimentName) -> Response:
        return _transition(router_, router_.store().stop, body.name)

    return router
