"""The prediction API: the app factory. It only wires; the parts live elsewhere.

Routes: ``POST /v1/predict``, ``POST /v1/feedback``, ``GET /v1/model``, ``GET|POST
/v1/experiments``, ``POST /v1/experiments/start|stop`` (an API key with the route's scope:
predict, feedback, admin), ``GET /health/live``, ``GET /health/ready``, ``GET /metrics``
(open), ``/docs`` (Swagger UI from local assets) and ``/openapi.json``.

- ``model_serving.service``: the process's parts (model manager, sink, shadow scorer, feature
  binder) and the domain objects the routes call (``Predictor``, ``FeedbackRecorder``,
  ``Readiness``), started and stopped by the app's lifespan;
- ``model_serving.api``: the edge middleware (request id, API key, content type, body size,
  metrics, access log: before any routing or body parsing), the API key (``ApiKeyAuth``, declared
  once for the docs and the edge), the error bodies, one router per concern, the docs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from mlops_common.features import feature_store
from mlops_common.registry import configure_http
from model_serving.api.auth import ApiKeyAuth
from model_serving.api.dependencies import LoadedModels
from model_serving.api.docs import mount_docs
from model_serving.api.edge import EdgeMiddleware
from model_serving.api.errors import install_error_handlers
from model_serving.api.routes.experiments import experiments_router
from model_serving.api.routes.feedback import feedback_router
from model_serving.api.routes.health import health_router
from model_serving.api.routes.model import model_router
from model_serving.api.routes.predict import predict_router
from model_serving.binding import StoreFactory
from model_serving.schemas import ErrorResponse
from model_serving.service import ServingService
from model_serving.settings import ServingSettings

log = logging.getLogger("model_serving.api")


def create_app(
    settings: ServingSettings | None = None,
    *,
    store_factory: StoreFactory | None = None,
    start_background: bool = True,
) -> FastAPI:
    """The API. ``store_factory`` returns the ``feast.FeatureStore`` (default: the platform's
    ``feature_store``); ``start_background=False`` skips the model load and the threads (for
    tests of the edge only)."""
    settings = settings or ServingSettings.load()
    service = ServingService.build(settings, store_factory or (lambda: feature_store(settings)))
    auth = ApiKeyAuth(service.keys, required=settings.serving_auth_required)
    app = FastAPI(
        title="Model serving API",
        version="1.0.0",
        summary="Ranks candidate drivers of a booking by their probability of completing the trip",
        description=(
            "Scores come from the model registered as `champion` (optionally a `challenger` "
            "canary) with features read online from the model's Feast feature service. "
            f"Every `{auth.prefix}` route needs an API key in the `{auth.header}` header, with "
            "the route's scope (`predict`, `feedback` or `admin`)."
        ),
        lifespan=lifespan(service, start_background),
        docs_url=None,
        redoc_url=None,
        responses={413: {"model": ErrorResponse, "description": "Body larger than the limit"}},
    )
    app.state.service = service
    app.add_middleware(
        EdgeMiddleware,
        auth=auth,
        metrics=service.metrics,
        max_body_bytes=settings.serving_max_body_bytes,
        access_log=settings.serving_access_log,
    )
    install_error_handlers(app)
    loaded = LoadedModels(service.manager)
    app.include_router(predict_router(auth, service.predictor, settings.serving_max_candidates))
    app.include_router(feedback_router(auth, service.feedback))
    app.include_router(model_router(auth, loaded, service.manager.registry, settings))
    app.include_router(experiments_router(auth, service.experiments, settings.serving_model_name))
    app.include_router(health_router(loaded, service.readiness, service.metrics))
    auth.bind(app)
    mount_docs(app)
    return app


def lifespan(
    service: ServingService, start_background: bool
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start the service's parts (off the event loop: the first model load takes seconds) and
    stop them at shutdown; with ``start_background=False``, nothing."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        if not start_background:
            yield
            return
        settings = service.settings
        restore = configure_http(settings.serving_registry_timeout_s)
        limit_model_threads(settings.serving_model_threads)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, service.start)
        try:
            yield
        finally:
            await loop.run_in_executor(None, service.stop)
            restore()

    return run


def limit_model_threads(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except Exception as exc:  # pragma: no cover - threadpoolctl ships with sklearn
        log.warning("could not limit model threads: %s", exc)
