"""``/health/live`` (the process answers) and ``/health/ready`` (every part works)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from monitoring_service.api.deps import MonitorDep

router = APIRouter(tags=["health"])


@router.get("/health/live", response_class=PlainTextResponse)
def live() -> str:
    """``alive`` while the process answers (the launcher's and the image's health check)."""
    return "alive"


@router.get("/health/ready")
def ready(monitor: MonitorDep) -> JSONResponse:
    """200 when every check passes, else 503; ``checks`` always says why."""
    ok, checks = monitor.readiness()
    return JSONResponse(
        {"status": "ready" if ok else "not_ready", "checks": checks},
        status_code=200 if ok else 503,
    )
