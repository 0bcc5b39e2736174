"""The windows and their Evidently reports: ``/v1/windows``, ``/v1/windows/{id}``,
``/reports``, ``/reports/{id}``, ``/reports/{id}/{kind}``."""

from __future__ import annotations

import gzip
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from monitoring_service.api.deps import MonitorDep
from monitoring_service.api.errors import ApiError, error_responses
from monitoring_service.monitor import Monitor
from monitoring_service.reports import ReportKind

router = APIRouter(tags=["windows"])

HTML = "text/html; charset=utf-8"
#: window ids are SQLite row ids: 1 to 2^63-1 (beyond, 422; never a database overflow)
MAX_WINDOW_ID = 2**63 - 1
#: a report answer: HTML (errors stay JSON, hence no HTML response class)
REPORT_HTML: dict[str, Any] = {
    "description": "The Evidently report (HTML; gzip-encoded for clients that accept it)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
WindowId = Annotated[int, Path(ge=1, le=MAX_WINDOW_ID, description="The window's id (1 to 2^63-1)")]


@router.get("/v1/windows", responses=error_responses(422))
def windows(
    monitor: MonitorDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
    model_version: Annotated[str | None, Query(max_length=100)] = None,
    state: Literal["open", "closed", "drifted", "final"] | None = None,
) -> dict[str, Any]:
    """Recent windows, newest first, with the consumer's state, the window policy and the
    champion version."""
    settings = monitor.settings
    found = monitor.store.windows(limit, model_version, (state,) if state else ())
    return {
        "windows": [w.summary() for w in found],
        "consumer": monitor.consumer_status(),
        "policy": {
            "window_size": settings.monitoring_window_size,
            "window_seconds": settings.monitoring_window_seconds,
            "label_grace_s": settings.monitoring_label_grace_s,
        },
        "champion": monitor.references.champion_version,
    }


@router.get("/v1/windows/{window_id}", responses=error_responses(404, 422))
def window(monitor: MonitorDep, window_id: WindowId) -> JSONResponse:
    """One window, with the URLs of its reports."""
    found = monitor.store.window(window_id)
    if found is None:
        raise ApiError(404, "not_found", f"no window {window_id}")
    body = found.summary()
    body["reports"] = [f"/reports/{window_id}/{k}" for k in monitor.reports.kinds(window_id)]
    return JSONResponse(body)


@router.get("/reports")
def reports(monitor: MonitorDep) -> dict[str, Any]:
    """The windows whose reports are kept (the newest ``MONITORING_MAX_REPORTS``)."""
    listed = []
    for entry in monitor.reports.listing():
        wid = entry["window_id"]
        summary = monitor.store.window(wid)
        listed.append(
            {
                "window_id": wid,
                "model_version": summary.model_version if summary else None,
                "state": summary.state if summary else None,
                "closed_at": summary.closed_at if summary else None,
                "kinds": entry["kinds"],
                "urls": {k: f"/reports/{wid}/{k}" for k in entry["kinds"]},
            }
        )
    return {"reports": listed, "max_reports": monitor.settings.monitoring_max_reports}


@router.get(
    "/reports/{window_id}",
    response_model=None,
    response_class=Response,
    responses={200: REPORT_HTML, **error_responses(404, 422)},
)
def report(monitor: MonitorDep, request: Request, window_id: WindowId) -> Response:
    """The window's drift report (its quality report when drift was not computed)."""
    kind: ReportKind = "drift" if monitor.reports.path(window_id, "drift") else "quality"
    return _report(monitor, request, window_id, kind)


@router.get(
    "/reports/{window_id}/{kind}",
    response_model=None,
    response_class=Response,
    responses={200: REPORT_HTML, **error_responses(404, 422)},
)
def report_kind(
    monitor: MonitorDep, request: Request, window_id: WindowId, kind: ReportKind
) -> Response:
    """One report of the window (HTML; gzip-encoded for clients that accept it)."""
    return _report(monitor, request, window_id, kind)


def _report(monitor: Monitor, request: Request, window_id: int, kind: ReportKind) -> Response:
    path = monitor.reports.path(window_id, kind)
    if path is None:
        raise ApiError(404, "not_found", f"no {kind} report for window {window_id}")
    if "gzip" in request.headers.get("accept-encoding", "").lower():
        return FileResponse(
            path, media_type=HTML, headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        )
    return Response(
        gzip.decompress(path.read_bytes()), media_type=HTML, headers={"Vary": "Accept-Encoding"}
    )
