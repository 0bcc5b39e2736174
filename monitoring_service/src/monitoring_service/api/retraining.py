"""The retraining trigger's routes: Alertmanager's webhook in, the recorded decisions out.

``POST /v1/retraining/webhook``: the shared secret first (``webhook_auth.webhook_secret``), then
the body (size limit, JSON, an Alertmanager v4 payload), then the trigger's decision: 200 for
``triggered``/``skipped``, 502 for ``error`` (Alertmanager retries a 5xx). Every answer is
counted in ``monitoring_webhook_requests_total{status}``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mlops_common.events.alerts import AlertmanagerWebhook
from monitoring_service.api.deps import MonitorDep
from monitoring_service.api.errors import problems
from monitoring_service.api.webhook_auth import webhook_refusal, webhook_secret
from monitoring_service.store import SEP

router = APIRouter(tags=["retraining"])


async def _body(request: Request, monitor: MonitorDep) -> bytes:
    """The request body, refused (413) as soon as it is over ``MONITORING_MAX_BODY_BYTES``."""
    limit = monitor.settings.monitoring_max_body_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise webhook_refusal(monitor, 413, "too_large", f"body over {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise webhook_refusal(monitor, 413, "too_large", f"body over {limit} bytes")
    return body


async def alertmanager_payload(
    request: Request, monitor: MonitorDep, body: Annotated[bytes, Depends(_body)]
) -> AlertmanagerWebhook:
    """The body as an Alertmanager webhook payload: 415 not JSON by its Content-Type, 400 not
    JSON, 422 not a version-4 payload (the message names the field)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise webhook_refusal(
            monitor, 415, "unsupported_media_type", "Content-Type must be application/json"
        )
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise webhook_refusal(monitor, 400, "invalid_json", f"body is not JSON: {exc}") from None
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


@router.get("/v1/retraining/decisions")
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
