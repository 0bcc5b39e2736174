"""``/health/live`` (the process answers) and ``/health/ready`` (every part works)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from monitoring_service.api.deps import MonitorDep

router = APIRouter(tags=["health"])


class ReadinessBody(BaseModel):
    """The readiness answer (200 ready, 503 not): ``checks`` says why."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, dict[str, Any]]


@router.get("/health/live", response_class=PlainTextResponse)
def live() -> str:
    """``alive`` while the process answers (the launcher's and the image's health check)."""
    return "alive"


@router.get(
    "/health/ready",
    response_model=ReadinessBody,
    responses={503: {"model": ReadinessBody, "description": "A check fails (`checks` says which)"}},
)
def ready(monitor: MonitorDep) -> JSONResponse:
    """200 when every check passes, else 503; ``checks`` always says why."""
    ok, checks = monitor.readiness()
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "checks": checks},
        status_code=200 if ok else 503,
    )
