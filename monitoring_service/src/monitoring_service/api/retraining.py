"""The retraining trigger's routes: Alertmanager's webhook in, the recorded decisions out.

``POST /v1/retraining/webhook``: the shared secret first (``webhook_auth.webhook_secret``), then
the body (size limit, JSON, an Alertmanager v4 payload), then the trigger's decision: 200 for
``triggered``/``skipped``, 502 for ``error`` (Alertmanager retries a 5xx). Every answer is
counted in ``monitoring_webhook_requests_total{status}``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from mlops_common.events.alerts import AlertmanagerWebhook
from mlops_common.http import BodyRejected, parse_json, read_body
from monitoring_service.api.deps import MonitorDep
from monitoring_service.api.docs import request_body
from monitoring_service.api.errors import error_responses, problems
from monitoring_service.api.webhook_auth import webhook_refusal, webhook_secret
from monitoring_service.store import SEP

router = APIRouter(tags=["retraining"])


class WebhookAnswer(BaseModel):
    """One retraining decision (200 ``triggered``/``skipped``, 502 ``error``)."""

    decision: Literal["triggered", "skipped", "error"]
    reason: str
    detail: str
    alertnames: list[str]
    dag_run_id: str | None
    decision_id: int | None


async def _body(request: Request, monitor: MonitorDep) -> bytes:
    """The request body, refused (413) as soon as it is over ``MONITORING_MAX_BODY_BYTES``."""
    limit = monitor.settings.monitoring_max_body_bytes
    try:
        return await read_body(request.stream(), limit, request.headers.get("content-length"))
    except BodyRejected as exc:
        raise webhook_refusal(monitor, exc.status, exc.code, exc.message) from None


async def alertmanager_payload(
    request: Request, monitor: MonitorDep, body: Annotated[bytes, Depends(_body)]
) -> AlertmanagerWebhook:
    """The body as an Alertmanager webhook payload: 415 not JSON by its Content-Type, 400 not
    JSON (or nested too deep, or not Unicode: ``mlops_common.http.parse_json``), 422 not a
    version-4 payload (the message names the field)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise webhook_refusal(
            monitor, 415, "unsupported_media_type", "Content-Type must be application/json"
        )
    try:
        data = parse_json(body)
    except BodyRejected as exc:
        raise webhook_refusal(monitor, exc.status, exc.code, exc.message) from None
    try:
        return AlertmanagerWebhook.model_validate(data)
    except ValidationError as exc:
        raise webhook_refusal(
            monitor,
            422,
            "invalid_payload",
            f"not an Alertmanager v4 webhook payload: {problems(exc)}",
        ) from None


@router.post(
    "/v1/retraining/webhook",
    response_model=None,
    dependencies=[Security(webhook_secret)],
    openapi_extra=request_body(AlertmanagerWebhook),
    responses={
        200: {"model": WebhookAnswer, "description": "Decision `triggered` or `skipped`"},
        **error_responses(400, 401, 403, 413, 415, 422),
        502: {
            "model": WebhookAnswer,
            "description": "Decision `error`: Airflow unreachable or "
            "refusing (Alertmanager retries a 5xx)",
        },
    },
)
async def webhook(
    monitor: MonitorDep,
    payload: Annotated[AlertmanagerWebhook, Depends(alertmanager_payload)],
) -> JSONResponse:
    """Alertmanager's webhook (JSON, version 4): one retraining decision, recorded."""
    outcome = await run_in_threadpool(monitor.trigger.handle, payload)
    status = 502 if outcome.decision == "error" else 200
    monitor.metrics.webhook_requests.labels(str(status)).inc()
    return JSONResponse(outcome.as_dict(), status_code=status)


@router.get("/v1/retraining/decisions", responses=error_responses(422))
def decisions(
    monitor: MonitorDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> dict[str, Any]:
    """The recorded decisions, newest first, and the totals per decision and reason."""
    counts = {
        SEP.join(labels): value
        for (name, labels), value in monitor.store.counters().items()
        if name == "retraining_decisions"
    }
    settings = monitor.settings
    return {
        "decisions": monitor.store.decisions(limit),
        "totals": {k.replace(SEP, "/"): v for k, v in sorted(counts.items())},
        "cooldown_s": settings.monitoring_trigger_cooldown_s,
        "dag_id": settings.monitoring_training_dag_id,
    }
