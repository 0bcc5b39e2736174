"""The prediction API: FastAPI app factory.

Routes: ``POST /v1/predict``, ``POST /v1/feedback``, ``GET /v1/model`` (API key required),
``GET /health/live``, ``GET /health/ready``, ``GET /metrics`` (open), ``/docs`` (Swagger UI from
local assets) and ``/openapi.json``.

The edge (``EdgeMiddleware``, plain ASGI) runs before any routing or body parsing: request id,
API key check for ``/v1``, content type and body size limits, in-flight gauge, request metrics
and one JSON access-log line per request.
"""

import asyncio
import hashlib
import hmac
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlops_common.events import serving as events
from mlops_common.features import feature_store
from mlops_common.logs import request_id_var
from mlops_common.registry import configure_http
from model_serving.features import (
    FeatureRead,
    FeatureReader,
    FeatureServiceError,
    OnlineStoreError,
    make_reader,
)
from model_serving.lifecycle import ModelManager, ServingState
from model_serving.metrics import NO_MODEL, ServingMetrics
from model_serving.models import LoadedModel, ModelLoadError
from model_serving.schemas import (
    REQUEST_ID_PATTERN,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ModelInfoResponse,
    PredictResponse,
    predict_request_model,
)
from model_serving.settings import ServingSettings
from model_serving.shadow import ShadowJob, ShadowScorer, feature_matrix, rank
from model_serving.sink import EventSink

log = logging.getLogger("model_serving.api")
access_log = logging.getLogger("model_serving.access")

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
ROUTES = {
    "/v1/predict",
    "/v1/feedback",
    "/v1/model",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/docs",
    "/openapi.json",
}
#: routes that take a JSON body (the edge checks its content type before routing)
BODY_ROUTES = {("POST", "/v1/predict"), ("POST", "/v1/feedback")}
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)

StoreFactory = Callable[[], Any]


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.details = status, error, message, details


def error_response(
    status: int,
    error: str,
    message: str,
    request_id: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message, "request_id": request_id}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def canary_bucket(request_id: str) -> int:
    """A stable bucket in [0, 10000) per request id: the same id always lands in the same one."""
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000


# --- the edge -------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, settings: ServingSettings, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = settings.serving_max_body_bytes
        key = settings.serving_api_key.get_secret_value()
        self.api_key = key.encode() if key else None
        self.auth_required = settings.serving_auth_required
        self.access_log = settings.serving_access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        path: str = scope["path"]
        route = path if path in ROUTES else ("/docs" if path.startswith("/docs") else "other")
        headers = dict(scope["headers"])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        scope["request_id"] = request_id
        token = request_id_var.set(request_id)
        status_holder = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                rid = scope.get("answer_request_id", request_id)
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", str(rid).encode("latin-1")),
                ]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            problem = self._check(scope, path, headers)
            if problem is not None:
                await problem(scope, receive, send_wrapper)
            else:
                await self.app(scope, self._limited(receive), send_wrapper)
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - began
            version = scope.get("model_version", NO_MODEL)
            status = status_holder[0]
            counter, histogram = self.metrics.request(route, scope["method"], str(status), version)
            counter.inc()
            histogram.observe(elapsed)
            if self.access_log and route not in {"/metrics", "/health/live"}:
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    path,
                    status,
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "model_version": version,
                        "request_id": scope.get("answer_request_id", request_id),
                    },
                )
            request_id_var.reset(token)

    def _check(self, scope: Scope, path: str, headers: dict[bytes, bytes]) -> ASGIApp | None:
        rid = scope["request_id"]
        if path.startswith("/v1/") and self.auth_required:
            key = headers.get(b"x-api-key")
            if not key:
                return error_response(
                    401,
                    "unauthorized",
                    f"missing API key: send it in the {API_KEY_HEADER} header",
                    rid,
                    headers={"WWW-Authenticate": API_KEY_HEADER},
                )
            if self.api_key is None or not hmac.compare_digest(key, self.api_key):
                return error_response(403, "forbidden", "invalid API key", rid)
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return error_response(400, "invalid_request", "Content-Length is not a number", rid)
            if size > self.limit:
                return self._too_large(rid)
        if (scope["method"], path) in BODY_ROUTES:
            ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if ctype != b"application/json" and not (
                ctype.startswith(b"application/") and ctype.endswith(b"+json")
            ):
                shown = ctype.decode("latin-1") or "none"
                return error_response(
                    415,
                    "unsupported_media_type",
                    f"Content-Type must be application/json (got {shown})",
                    rid,
                )
        return None

    def _too_large(self, rid: str) -> JSONResponse:
        return error_response(
            413, "body_too_large", f"request body larger than {self.limit} bytes", rid
        )

    def _limited(self, receive: Receive) -> Receive:
        seen = [0]
        limit = self.limit

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    # an HTTPException: FastAPI re-raises it from its body reading, and the
                    # app's handler answers 413
                    raise StarletteHTTPException(413, f"request body larger than {limit} bytes")
            return message

        return wrapped


# --- the service ----------------------------------------------------------------------------


@dataclass
class Service:
    """Everything the routes share; one per app."""

    settings: ServingSettings
    metrics: ServingMetrics
    store_factory: StoreFactory
    manager: ModelManager = field(init=False)
    sink: EventSink = field(init=False)
    shadow: ShadowScorer = field(init=False)
    readers: dict[str, FeatureReader] = field(default_factory=dict)
    answered: dict[str, dict[str, str]] = field(default_factory=dict)
    _store: Any = None
    _store_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        s = self.settings
        self.manager = ModelManager(s, self.metrics, self.bind)
        self.sink = EventSink(
            s.events_redis_url,
            {
                events.PREDICTION: s.serving_events_prediction_stream,
                events.FEEDBACK: s.serving_events_feedback_stream,
            },
            bound=s.serving_events_buffer,
            maxlen=s.serving_events_stream_maxlen,
            metrics=self.metrics,
        )
        self.shadow = ShadowScorer(self.metrics, s.serving_shadow_queue)

    # --- feature readers (called by the watcher thread, never on the request path) --------
    def store(self) -> Any:
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = self.store_factory()
                except Exception as exc:
                    raise ModelLoadError(
                        f"the feature store is not available: {type(exc).__name__}: {exc}"
                    ) from exc
            return self._store

    def bind(self, model: LoadedModel) -> LoadedModel:
        """Attach the reader of the model's feature service (re-read from the Feast registry)
        and the positions of the model's input columns among the service's features."""
        store = self.store()
        service = model.feature_service
        try:
            if hasattr(store, "refresh_registry"):
                store.refresh_registry()
            reader = make_reader(
                store,
                service,
                self.settings.serving_feature_reader,
                self.settings.serving_online_store_timeout_s,
            )
        except FeatureServiceError as exc:
            raise ModelLoadError(str(exc)) from exc
        except Exception as exc:
            raise ModelLoadError(
                f"feature service {service!r}: {type(exc).__name__}: {exc}"
            ) from exc
        current = self.readers.get(service)
        if current is not None and current.spec == reader.spec and current.kind == reader.kind:
            reader.close()
            reader = current
        missing = [c for c in model.columns if c not in reader.spec.feature_names]
        if missing:
            raise ModelLoadError(
                f"{model.name} v{model.version} needs features {missing} that feature service "
                f"{service!r} does not provide (it has {list(reader.spec.feature_names)})"
            )
        try:  # warm the read path (first calls are slow) and prove the store answers
            reader.read([1])
        except OnlineStoreError as exc:
            log.warning("online store not answering while loading v%s: %s", model.version, exc)
        self.readers[service] = reader
        names = reader.spec.feature_names
        return replace(model, reader=reader, positions=tuple(names.index(c) for c in model.columns))

    def remember(self, request_id: str, model: dict[str, str]) -> None:
        limit = self.settings.serving_request_memory
        if limit <= 0:
            return
        self.answered[request_id] = model
        if len(self.answered) > limit:
            del self.answered[next(iter(self.answered))]

    def start(self) -> None:
        self.sink.start()
        self.shadow.start()
        self.manager.start()

    def stop(self) -> None:
        self.manager.stop()
        self.shadow.stop()
        self.sink.stop()
        for reader in self.readers.values():
            reader.close()


def _ranked_candidates(
    model: LoadedModel, ranking: list[tuple[int, float]], read: FeatureRead
) -> list[dict[str, Any]]:
    columns, positions = model.columns, model.positions
    out = []
    for driver, score in ranking:
        row = read.rows[driver]
        out.append(
            {
                "driver_id": driver,
                "score": score,
                "features": {c: row[p] for c, p in zip(columns, positions, strict=True)},
                "feature_time": datetime.fromtimestamp(read.times[driver], tz=UTC),
            }
        )
    return out


def _model_ref(model: LoadedModel) -> dict[str, str]:
    return {"name": model.name, "version": model.version, "alias": model.alias}


def create_app(
    settings: ServingSettings | None = None,
    *,
    store_factory: StoreFactory | None = None,
    start_background: bool = True,
) -> FastAPI:
    """The API. ``store_factory`` returns the ``feast.FeatureStore`` (default: the data
    pipeline's ``feature_store``); ``start_background=False`` skips the model load and the
    threads (for tests of the edge only)."""
    settings = settings or ServingSettings.load()
    metrics = ServingMetrics()
    service = Service(settings, metrics, store_factory or (lambda: feature_store(settings)))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        restore = configure_http(settings.serving_registry_timeout_s) if start_background else None
        if start_background:
            try:
                from threadpoolctl import threadpool_limits

                threadpool_limits(settings.serving_model_threads)
            except Exception as exc:  # pragma: no cover - threadpoolctl ships with sklearn
                log.warning("could not limit model threads: %s", exc)
            await asyncio.get_running_loop().run_in_executor(None, service.start)
        try:
            yield
        finally:
            if start_background:
                await asyncio.get_running_loop().run_in_executor(None, service.stop)
            if restore is not None:
                restore()

    app = FastAPI(
        title="Model serving API",
        version="1.0.0",
        summary="Ranks candidate drivers of a booking by their probability of completing the trip",
        description=(
            "Scores come from the model registered as `champion` (optionally a `challenger` "
            "canary) with features read online from the model's Feast feature service. "
            f"Every `/v1` route needs the API key in the `{API_KEY_HEADER}` header."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses={
            413: {"model": ErrorResponse, "description": "Body larger than the limit"},
        },
    )
    app.state.service = service
    app.add_middleware(EdgeMiddleware, settings=settings, metrics=metrics)  # type: ignore[arg-type]
    api_key = APIKeyHeader(
        name=API_KEY_HEADER,
        auto_error=False,
        description="The serving API key (SERVING_API_KEY in the platform's .env)",
    )
    secured = [Security(api_key)]
    auth_errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorResponse, "description": "No API key"},
        403: {"model": ErrorResponse, "description": "Wrong API key"},
        415: {"model": ErrorResponse, "description": "Content-Type is not application/json"},
        422: {"model": ErrorResponse, "description": "Malformed request (the message says what)"},
    }

    # --- errors: every one a JSON body naming the problem --------------------------------
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        status = 422
        for error in exc.errors():
            loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            if error.get("type") == "json_invalid":
                status = 400
                reason = (error.get("ctx") or {}).get("error", "invalid JSON")
                problems.append(f"body is not valid JSON: {reason}")
            elif error.get("type") == "missing" and loc == "body":
                problems.append("body: a JSON object is required")
            else:
                message = str(error.get("msg", "invalid"))
                message = message.removeprefix("Value error, ")
                problems.append(f"{loc}: {message}")
        details = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "type": e.get("type"),
                "msg": str(e.get("msg")),
            }
            for e in exc.errors()
        ]
        return error_response(
            status,
            "invalid_json" if status == 400 else "invalid_request",
            "; ".join(problems),
            request.scope.get("request_id"),
            details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            400: "invalid_request",
            413: "body_too_large",
        }
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            request.scope.get("request_id"),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status,
            exc.error,
            exc.message,
            request.scope.get("answer_request_id", request.scope.get("request_id")),
            exc.details,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(
            500,
            "internal_error",
            "internal error; see the service log",
            request.scope.get("request_id"),
        )

    # --- /v1 ---------------------------------------------------------------------------------
    PredictRequest = predict_request_model(settings.serving_max_candidates)
    max_candidates = settings.serving_max_candidates
    canary_threshold = round(settings.serving_canary_percent * 100)
    shadow_on = settings.serving_shadow
    read_latency = {kind: metrics.feature_read_latency.labels(kind) for kind in ("redis", "feast")}

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        dependencies=secured,
        tags=["prediction"],
        summary="Rank candidate drivers",
        responses={
            **auth_errors,
            400: {"model": ErrorResponse, "description": "Body is not valid JSON"},
            409: {
                "model": ErrorResponse,
                "description": "No candidate can be scored in the online store's current "
                "state: all unknown to it, or with features older than the view's TTL",
            },
            503: {
                "model": ErrorResponse,
                "description": "No model loaded yet, or the online store is down",
            },
        },
    )
    async def predict(
        request: Request,
        body: Annotated[
            PredictRequest,  # type: ignore[valid-type]
            Body(
                openapi_examples={
                    "three candidates": {
                        "summary": "Rank three drivers",
                        "value": {
                            "request_id": "booking-2024-000123",
                            "driver_ids": [1001, 1002, 1003],
                        },
                    },
                    "no request id": {
                        "summary": "Let the service generate the request id",
                        "value": {"driver_ids": [1004, 1005]},
                    },
                }
            ),
        ],
    ) -> Response:
        began = time.perf_counter()
        scope = request.scope
        state: ServingState = service.manager.state
        model = state.champion
        if model is None:
            raise ApiError(503, "no_model", "no model is loaded yet (see /health/ready for why)")
        request_id = body.request_id or scope["request_id"]  # type: ignore[attr-defined]
        scope["answer_request_id"] = request_id
        ids: list[int] = body.driver_ids  # type: ignore[attr-defined]
        challenger = state.challenger
        if (
            challenger is not None
            and canary_threshold
            and canary_bucket(request_id) < canary_threshold
        ):
            model = challenger
        version = model.version
        scope["model_version"] = version
        per_version = metrics.version(version, model.alias)
        reader: FeatureReader = model.reader
        t0 = time.perf_counter()
        try:
            read = reader.read(ids)
        except OnlineStoreError as exc:
            raise ApiError(503, "online_store_unavailable", str(exc)) from None
        t1 = time.perf_counter()
        read_latency[reader.kind].observe(t1 - t0)
        if read.unknown:
            per_version.unknown.inc(len(read.unknown))
        if read.stale:
            per_version.stale.inc(len(read.stale))
        metrics.candidates.observe(len(ids))
        if not read.rows:
            per_version.no_scorable.inc()
            raise ApiError(
                409,
                "no_scorable_candidates",
                f"none of the {len(ids)} candidates can be scored: "
                f"{len(read.unknown)} unknown to the online store, {len(read.stale)} with "
                "features older than the feature view's TTL",
                {"unknown_driver_ids": read.unknown, "stale_driver_ids": read.stale},
            )
        scored = [i for i in ids if i in read.rows] if len(read.rows) < len(ids) else ids
        rows = read.rows
        matrix = feature_matrix([rows[i] for i in scored], model.positions)
        t2 = time.perf_counter()
        try:
            scores = model.score(matrix)
        except Exception as exc:
            log.exception("model v%s failed to score", version)
            raise ApiError(503, "model_error", f"model v{version} failed: {exc}") from None
        t3 = time.perf_counter()
        per_version.model_latency.observe(t3 - t2)
        ranking = rank(scored, scores)
        best = ranking[0][0]
        per_version.predictions.inc()
        per_version.best_score.observe(ranking[0][1])
        for _, value in ranking:
            per_version.scores.observe(value)
        ref = _model_ref(model)
        service.remember(request_id, ref)
        answer = {
            "request_id": request_id,
            "best_driver_id": best,
            "scores": [{"driver_id": d, "score": s} for d, s in ranking],
            "model": ref,
            "unknown_driver_ids": read.unknown,
            "stale_driver_ids": read.stale,
        }
        latency_ms = (time.perf_counter() - began) * 1000
        now = datetime.now(UTC)
        answering = model

        def build(shadow: dict[str, Any] | None = None) -> events.PredictionEvent:
            return events.PredictionEvent.model_validate(
                {
                    "request_id": request_id,
                    "time": now,
                    "model": ref,
                    "candidates": _ranked_candidates(answering, ranking, read),
                    "best_driver_id": best,
                    "unknown_driver_ids": read.unknown,
                    "stale_driver_ids": read.stale,
                    "shadow": shadow,
                    "latency_ms": latency_ms,
                }
            )

        if shadow_on and challenger is not None and model is not challenger:
            shadow_model = challenger

            def shadow_done(shadow_ranking: list[tuple[int, float]] | None) -> None:
                if shadow_ranking is None:
                    service.sink.submit(events.PREDICTION, build)
                    return
                shadow = {
                    "model": _model_ref(shadow_model),
                    "scores": [{"driver_id": d, "score": s} for d, s in shadow_ranking],
                    "best_driver_id": shadow_ranking[0][0],
                }
                service.sink.submit(events.PREDICTION, lambda: build(shadow))

            job = ShadowJob(shadow_model, reader, scored, read, shadow_done)
            if not service.shadow.submit(job):
                service.sink.submit(events.PREDICTION, build)
        else:
            service.sink.submit(events.PREDICTION, build)
        return JSONResponse(answer)

    @app.post(
        "/v1/feedback",
        status_code=202,
        response_model=FeedbackResponse,
        dependencies=secured,
        tags=["prediction"],
        summary="Report whether the trip was completed (the label)",
        responses={
            **auth_errors,
            400: {"model": ErrorResponse, "description": "Body is not valid JSON"},
        },
    )
    async def feedback(request: Request, body: FeedbackRequest) -> Response:
        request.scope["answer_request_id"] = body.request_id
        model = service.answered.get(body.request_id)
        version = model["version"] if model else NO_MODEL
        request.scope["model_version"] = version
        now = datetime.now(UTC)
        metrics.feedback.labels(str(body.trip_completed).lower(), version).inc()
        service.sink.submit(
            events.FEEDBACK,
            lambda: events.FeedbackEvent(
                request_id=body.request_id,
                time=now,
                driver_id=body.driver_id,
                trip_completed=body.trip_completed,
                model=events.ModelRef.model_validate(model) if model else None,
            ),
        )
        return JSONResponse(
            {"status": "accepted", "request_id": body.request_id, "model": model},
            status_code=202,
        )

    @app.get(
        "/v1/model",
        response_model=ModelInfoResponse,
        dependencies=secured,
        tags=["model"],
        summary="Served model versions, registry aliases and traffic split",
        responses={401: auth_errors[401], 403: auth_errors[403]},
    )
    async def model_info() -> Response:
        state = service.manager.state
        served = [m.describe() for m in (state.champion, state.challenger) if m is not None]
        return JSONResponse(
            {
                "name": settings.serving_model_name,
                "served": served,
                "registry": service.manager.registry.describe(),
                "traffic": {
                    "canary_percent": settings.serving_canary_percent,
                    "shadow": settings.serving_shadow,
                    "challenger_loaded": state.challenger is not None,
                    "max_candidates": max_candidates,
                },
            }
        )

    # --- health and metrics (open) ---------------------------------------------------------
    @app.get(
        "/health/live",
        response_model=HealthResponse,
        tags=["health"],
        summary="The process answers",
    )
    async def live() -> Response:
        return JSONResponse({"status": "alive", "checks": {}})

    @app.get(
        "/health/ready",
        response_model=HealthResponse,
        tags=["health"],
        summary="Ready: a model is loaded and the online store answers",
        responses={503: {"model": HealthResponse, "description": "Not ready (checks say why)"}},
    )
    async def ready() -> Response:
        state = service.manager.state
        checks: dict[str, Any] = {}
        ok = True
        champion = state.champion
        if champion is None:
            ok = False
            reason = service.manager.registry.load_errors.get("champion") or (
                "registry unreachable and no cached champion"
                if service.manager.registry.reachable is False
                else f"no version has the alias {settings.serving_champion_alias!r} of "
                f"{settings.serving_model_name!r} yet"
            )
            checks["model"] = {"ok": False, "detail": reason}
        else:
            checks["model"] = {
                "ok": True,
                "detail": f"{champion.name} v{champion.version} "
                f"({champion.flavor}, from {champion.source})",
            }
            try:
                detail = await asyncio.get_running_loop().run_in_executor(
                    None, champion.reader.ping
                )
                checks["online_store"] = {"ok": True, "detail": detail}
            except OnlineStoreError as exc:
                ok = False
                checks["online_store"] = {"ok": False, "detail": str(exc)}
        registry = service.manager.registry
        checks["registry"] = {
            "ok": registry.reachable is not False,
            "detail": (
                "reachable"
                if registry.reachable
                else f"unreachable, serving what is loaded: {registry.last_error}"
                if registry.reachable is False
                else "not asked yet"
            ),
            **registry.describe(),
        }
        checks["events"] = {"ok": service.sink.up is not False, **service.sink.describe()}
        if settings.needs_challenger:
            checks["challenger"] = {
                "ok": True,
                "loaded": state.challenger.version if state.challenger else None,
            }
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}
        },
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- Swagger UI from the local assets of fastapi-offline -------------------------------
    static = files("fastapi_offline") / "static"
    app.mount("/docs/static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    return app
