"""The monitoring service's HTTP API (FastAPI) and the wiring of its background workers.

Threads: the event consumer (Redis → SQLite), the evaluator (Evidently per window), the
reference watcher (the champion alias in MLflow). HTTP handlers only read the state database
and the report files; the webhook calls Airflow (in FastAPI's thread pool, never on the event
loop).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import redis
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_common.events.alerts import AlertmanagerWebhook
from monitoring_service.consumer import EventConsumer, redact
from monitoring_service.evaluator import Evaluator
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.reference import ReferenceStore
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import SEP, Store
from monitoring_service.trigger import RetrainingTrigger

log = logging.getLogger("monitoring_service.app")

ReportKind = Literal["drift", "quality"]


class Services:
    """Everything one app instance runs (tests reach in through ``app.state.services``)."""

    def __init__(
        self, settings: MonitoringSettings, redis_client: redis.Redis | None = None
    ) -> None:
        self.settings = settings
        self.metrics = MonitoringMetrics()
        self.store = Store(settings.db_path, settings.window_policy)
        self.restore_counters()
        self.references = ReferenceStore(settings, self.metrics)
        self.evaluator = Evaluator(
            settings, self.store, self.references, self.metrics, lambda: self.consumer.watermark
        )
        self.consumer = EventConsumer(
            settings,
            self.store,
            self.metrics,
            client=redis_client,
            on_closed=self.evaluator.wake,
        )
        self.trigger = RetrainingTrigger(settings, self.store, self.metrics)
        self.evaluator.restore_gauges()
        self.started_at = time.time()

    def restore_counters(self) -> None:
        """Counters of durable effects continue from the persisted totals."""
        m = self.metrics
        targets = {
            "events_consumed": m.events_consumed,
            "events_malformed": m.events_malformed,
            "events_duplicate": m.events_duplicate,
            "windows": m.windows,
            "labels_late": m.labels_late,
            "retraining_decisions": m.decisions,
        }
        for (name, labels), value in self.store.counters().items():
            counter = targets.get(name)
            if counter is not None and value:
                counter.labels(*labels).inc(value)

    def start(self) -> None:
        self.references.start()
        self.evaluator.start()
        self.consumer.start()

    def stop(self) -> None:
        """Stop the consumer (it finishes its batch), then the others without waiting long:
        an evaluation cut off by the exit is redone after the restart (the work list is the
        state database)."""
        self.evaluator.stop(timeout=0)
        self.references.stop(timeout=0)
        self.consumer.join(timeout=15.0)
        deadline = time.monotonic() + 5.0
        self.evaluator.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.references.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.store.close()


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def _problems(exc: ValidationError | RequestValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
        for e in exc.errors()
    )


def check_secret(settings: MonitoringSettings, header: str | None) -> tuple[int, str] | None:
    """None when the Authorization header carries the shared secret; else (status, why)."""
    if not settings.monitoring_webhook_auth_required:
        return None
    secret = settings.monitoring_webhook_secret.get_secret_value().encode()
    if not header:
        return 401, "missing Authorization header (Bearer <MONITORING_WEBHOOK_SECRET>)"
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        offered = value.encode()
    elif scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return 401, "malformed basic credentials"
        offered = decoded.partition(":")[2].encode()
    else:
        return 401, "Authorization must be Bearer <secret> or Basic <user:secret>"
    if not secret or not hmac.compare_digest(offered, secret):
        return 403, "wrong webhook secret"
    return None


def create_app(
    settings: MonitoringSettings,
    *,
    redis_client: redis.Redis | None = None,
    background: bool = True,
) -> FastAPI:
    """The app; ``background=False`` leaves the workers stopped (tests drive them)."""
    services = Services(settings, redis_client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background:
            services.start()
        log.info(
            "monitoring %s@%s on %s, state %s",
            settings.monitoring_model_name,
            settings.monitoring_champion_alias,
            redact(settings.events_redis_url),
            settings.db_path,
        )
        try:
            yield
        finally:
            services.stop()

    app = FastAPI(
        title="MLOps monitoring service",
        version="0.1.0",
        description="Drift and quality per window (Evidently), and the retraining trigger.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _problems(exc))

    # --- health and metrics ----------------------------------------------------------------
    @app.get("/health/live", response_class=PlainTextResponse)
    def live() -> str:
        return "alive"

    @app.get("/health/ready")
    def ready() -> JSONResponse:
        redis_problem = services.consumer.ping()
        reference_ok, reference = services.references.readiness()
        checks: dict[str, dict[str, Any]] = {
            "redis": {"ok": redis_problem is None, "detail": redis_problem or "answers"},
            "consumer": {
                "ok": services.consumer.up is not False,
                "up": services.consumer.up,
                "last_error": services.consumer.last_error,
                "watermark": services.consumer.watermark,
            },
            "reference": {"ok": reference_ok, **reference},
            "evaluator": {
                "ok": services.evaluator.ready,
                "evidently_loaded": services.evaluator.ready,
            },
        }
        ok = all(bool(c["ok"]) for c in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- windows -----------------------------------------------------------------------------
    @app.get("/v1/windows")
    def windows(
        limit: int = Query(default=20, ge=1, le=500),
        model_version: str | None = Query(default=None, max_length=100),
        state: Literal["open", "closed", "drifted", "final"] | None = None,
    ) -> dict[str, Any]:
        store = services.store
        found = store.windows(limit, model_version, (state,) if state else ())
        counters = store.counters()
        return {
            "windows": [w.summary() for w in found],
            "consumer": {
                "watermark": services.consumer.watermark,
                "up": services.consumer.up,
                "events": {
                    "/".join((name, *labels)): value
                    for (name, labels), value in sorted(counters.items())
                    if name.startswith("events_")
                },
            },
            "policy": {
                "window_size": settings.monitoring_window_size,
                "window_seconds": settings.monitoring_window_seconds,
                "label_grace_s": settings.monitoring_label_grace_s,
            },
            "champion": services.references.champion_version,
        }

    @app.get("/v1/windows/{window_id}")
    def window(window_id: int) -> JSONResponse:
        found = services.store.window(window_id)
        if found is None:
            return _error(404, "not_found", f"no window {window_id}")
        body = found.summary()
        body["reports"] = [
            f"/reports/{window_id}/{k}"
            for k in ("drift", "quality")
            if services.evaluator.report_path(window_id, k)
        ]
        return JSONResponse(body)

    # --- reports -----------------------------------------------------------------------------
    @app.get("/reports")
    def reports() -> dict[str, Any]:
        listed = []
        for entry in services.evaluator.reports():
            wid = entry["window_id"]
            summary = services.store.window(wid)
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
        return {"reports": listed, "max_reports": settings.monitoring_max_reports}

    def _report(request: Request, window_id: int, kind: ReportKind) -> Response:
        path = services.evaluator.report_path(window_id, kind)
        if path is None:
            return _error(404, "not_found", f"no {kind} report for window {window_id}")
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            return FileResponse(
                path,
                media_type="text/html; charset=utf-8",
                headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
            )
        return Response(
            gzip.decompress(path.read_bytes()),
            media_type="text/html; charset=utf-8",
            headers={"Vary": "Accept-Encoding"},
        )

    @app.get("/reports/{window_id}", response_model=None)
    def report(request: Request, window_id: int) -> Response:
        """The window's drift report (its quality report when drift was not computed)."""
        kind: ReportKind = (
            "drift" if services.evaluator.report_path(window_id, "drift") else "quality"
        )
        return _report(request, window_id, kind)

    @app.get("/reports/{window_id}/{kind}", response_model=None)
    def report_kind(request: Request, window_id: int, kind: ReportKind) -> Response:
        return _report(request, window_id, kind)

    # --- the retraining trigger ------------------------------------------------------------------
    @app.post("/v1/retraining/webhook", response_model=None)
    async def webhook(request: Request) -> JSONResponse:
        m = services.metrics
        refused = check_secret(settings, request.headers.get("authorization"))
        if refused is not None:
            status, why = refused
            m.webhook_requests.labels(str(status)).inc()
            response = _error(status, "unauthorized" if status == 401 else "forbidden", why)
            if status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="monitoring"'
            return response
        limit = settings.monitoring_max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            m.webhook_requests.labels("413").inc()
            return _error(413, "too_large", f"body over {limit} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                m.webhook_requests.labels("413").inc()
                return _error(413, "too_large", f"body over {limit} bytes")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            m.webhook_requests.labels("415").inc()
            return _error(415, "unsupported_media_type", "Content-Type must be application/json")
        try:
            data = json.loads(body)
        except ValueError as exc:
            m.webhook_requests.labels("400").inc()
            return _error(400, "invalid_json", f"body is not JSON: {exc}")
        try:
            payload = AlertmanagerWebhook.model_validate(data)
        except ValidationError as exc:
            m.webhook_requests.labels("422").inc()
            return _error(
                422, "invalid_payload", f"not an Alertmanager v4 webhook payload: {_problems(exc)}"
            )
        outcome = await run_in_threadpool(services.trigger.handle, payload)
        status = 502 if outcome.decision == "error" else 200
        m.webhook_requests.labels(str(status)).inc()
        return JSONResponse(outcome.as_dict(), status_code=status)

    @app.get("/v1/retraining/decisions")
    def decisions(limit: int = Query(default=50, ge=1, le=1000)) -> dict[str, Any]:
        counts = {
            SEP.join(labels): value
            for (name, labels), value in services.store.counters().items()
            if name == "retraining_decisions"
        }
        return {
            "decisions": services.store.decisions(limit),
            "totals": {k.replace(SEP, "/"): v for k, v in sorted(counts.items())},
            "cooldown_s": settings.monitoring_trigger_cooldown_s,
            "dag_id": settings.monitoring_training_dag_id,
        }

    return app
