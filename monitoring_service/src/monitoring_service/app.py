"""The monitoring service's HTTP app: ``create_app`` wires the service (``monitor.Monitor``),
its lifespan, the JSON errors and one router per concern (``monitoring_service.api``).

HTTP handlers only read the state database and the report files; the webhook calls Airflow
(in FastAPI's thread pool, never on the event loop).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import redis
from fastapi import FastAPI

from mlops_common.redis import redact
from monitoring_service.api import docs, health, prometheus, retraining, windows
from monitoring_service.api.errors import install_error_handlers
from monitoring_service.monitor import Monitor
from monitoring_service.settings import MonitoringSettings

log = logging.getLogger("monitoring_service.app")

ROUTERS = (health.router, prometheus.router, windows.router, retraining.router, docs.router)


def create_app(
    settings: MonitoringSettings,
    *,
    redis_client: redis.Redis | None = None,
    background: bool = True,
) -> FastAPI:
    """The app; ``background=False`` leaves the workers stopped (tests drive them)."""
    monitor = Monitor(settings, redis_client)
    app = FastAPI(
        title="MLOps monitoring service",
        version="0.1.0",
        description="Drift and quality per window (Evidently), and the retraining trigger.",
        lifespan=_lifespan(monitor, background),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by the docs router
    )
    app.state.monitor = monitor
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


def _lifespan(
    monitor: Monitor, background: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the workers (unless ``background`` is off) and stop them at shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings = monitor.settings
        if background:
            monitor.start()
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
            monitor.stop()

    return lifespan
