"""``/metrics``: the service's registry in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring_service.api.deps import MonitorDep

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus' text format",
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
        }
    },
)
def metrics(monitor: MonitorDep) -> Response:
    """Prometheus metrics (names starting with ``monitoring_`` and the process' own)."""
    return Response(generate_latest(monitor.metrics.registry), media_type=CONTENT_TYPE_LATEST)
