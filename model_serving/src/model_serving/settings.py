"""The serving component's one settings object (pydantic-settings).

Built on the shared base (``mlops_common.settings``, ``mlops_common.features``): values come
from, in order of precedence, keyword arguments, the process environment, the env file
(``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory), the defaults below.
Every field is read from the environment variable of the same name in upper case
(``serving_port`` <- ``SERVING_PORT``); the platform-wide ones are the base's (``MLOPS_DATA_DIR``,
``MLOPS_ONLINE_STORE_URL``, ``MLOPS_REDIS_URL``, ``MLFLOW_TRACKING_URI``, ``MLOPS_BIND_HOST``, …).

Secrets: ``SERVING_API_KEY`` has no usable default. With ``SERVING_AUTH_REQUIRED=true`` (the
default) the service refuses to start without one.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from mlops_common.features import FeatureStoreSettings
from mlops_common.settings import DataPath

FeatureReaderKind = Literal["auto", "redis", "feast"]


class ServingSettings(FeatureStoreSettings):
    """Everything the prediction service reads from its environment."""

    # --- the HTTP server -------------------------------------------------------------------
    serving_port: int = Field(default=8172, ge=1, le=65535)
    serving_api_key: SecretStr = Field(default=SecretStr(""))
    #: False only for local experiments: every /v1 route is then open
    serving_auth_required: bool = True
    #: largest accepted request body, bytes (413 above)
    serving_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    #: most candidates one /v1/predict may rank
    serving_max_candidates: int = Field(default=200, ge=1, le=10_000)
    serving_log_level: str = "INFO"
    #: log one line per request (JSON, with the request id)
    serving_access_log: bool = True

    # --- the model -------------------------------------------------------------------------
    serving_model_name: str = "driver_ranking"
    serving_champion_alias: str = "champion"
    serving_challenger_alias: str = "challenger"
    #: feature service when the model version does not name one (tag ``features.service``)
    serving_feature_service: str = "driver_ranking_v1"
    #: how often the watcher asks the registry where the aliases point, seconds
    serving_poll_interval_s: float = Field(default=10.0, gt=0, le=30.0)
    #: timeout of one registry call (MLflow's HTTP client), seconds
    serving_registry_timeout_s: float = Field(default=5.0, gt=0, le=120)
    #: threads one model call may use (OpenMP/BLAS); 1 avoids oversubscription
    serving_model_threads: int = Field(default=1, ge=1, le=256)
    #: score HistGradientBoosting classifiers with the vectorised predictor (identical numbers,
    #: checked at load; see model_serving.compiled)
    serving_compiled_models: bool = True
    #: last loaded champions kept in the local model cache
    serving_model_cache_keep: int = Field(default=3, ge=1, le=50)

    # --- traffic ---------------------------------------------------------------------------
    #: share of requests the challenger answers, percent (sticky per request id)
    serving_canary_percent: float = Field(default=0.0, ge=0.0, le=100.0)
    #: score every champion-answered request with the challenger too, off the request path
    serving_shadow: bool = False
    serving_shadow_queue: int = Field(default=1000, ge=1)
    #: how often serving reads the running experiment of its model from the experiment store
    #: (its arms, a bandit's allocation), seconds
    serving_experiments_refresh_s: float = Field(default=10.0, gt=0, le=300)

    # --- features --------------------------------------------------------------------------
    #: auto: direct Redis read when the online store is Redis, else Feast's SDK
    serving_feature_reader: FeatureReaderKind = "auto"
    #: socket timeout of the online store reads, seconds
    serving_online_store_timeout_s: float = Field(default=0.5, gt=0, le=30)
    #: deadline of a request's feature read (waiting for a read thread included), seconds:
    #: past it the answer is a 503 with Retry-After
    # 0.25 s: a loaded host (2 cores, a DAG run beside serving) sees reads of 80 ms and more
    serving_feature_read_timeout_s: float = Field(default=0.25, gt=0, le=30)
    #: threads reading the online store (the event loop never waits on a socket)
    serving_feature_read_threads: int = Field(default=8, ge=1, le=64)
    #: circuit breaker of the online store (model_serving.breaker): a read waiting this long
    #: while nothing comes back and another read waits is a stall (the breaker opens). 0.25 s
    #: (the read deadline: no stall verdict before it) by default: 0.07 s met the 100 ms target
    #: of a stopped Redis but opened it hundreds of times on a CPU-starved host (load 30, 2 cores)
    serving_online_store_stall_s: float = Field(default=0.25, gt=0, le=30)
    #: ... and while open, a background PING asks this often whether the store is back
    serving_online_store_probe_interval_s: float = Field(default=0.5, gt=0, le=60)

    # --- events ----------------------------------------------------------------------------
    #: Redis of the event streams (empty: MLOPS_REDIS_URL, else the online store's Redis)
    serving_events_redis_url: str = ""
    serving_events_prediction_stream: str = "mlops:serving:predictions"
    serving_events_feedback_stream: str = "mlops:serving:feedback"
    #: events held in memory while the sink is slow or down; more are dropped and counted
    serving_events_buffer: int = Field(default=10_000, ge=1)
    #: write-ahead log of unsent events (<state dir>/events.<host>.wal): an answered request's
    #: event survives a kill -9 of serving (replayed at the next start)
    serving_events_wal: bool = True
    #: approximate length each stream is trimmed to (XADD MAXLEN ~)
    serving_events_stream_maxlen: int = Field(default=1_000_000, ge=1000)
    #: feedback is accepted for the last this many answered request ids ...
    serving_request_memory: int = Field(default=100_000, ge=0)
    #: ... and for this many seconds after the answer (the feedback window)
    serving_feedback_window_s: float = Field(default=86_400.0, gt=0)

    # --- per-client API keys ---------------------------------------------------------------
    #: Redis of the key store (empty: the events' Redis)
    serving_api_keys_redis_url: str = ""
    #: the Redis hash of the keys (name -> scopes, created, scrypt hash of the secret)
    serving_api_keys_hash: str = "mlops:serving:api_keys"
    #: how often serving re-reads the key store (a created or revoked key counts after this)
    serving_api_keys_refresh_s: float = Field(default=5.0, gt=0, le=300)

    @model_validator(mode="after")
    def _check(self) -> ServingSettings:
        self.serving_log_level = self.serving_log_level.upper()
        if self.serving_champion_alias == self.serving_challenger_alias:
            raise ValueError("SERVING_CHAMPION_ALIAS and SERVING_CHALLENGER_ALIAS must differ")
        return self

    # --- derived ---------------------------------------------------------------------------
    #: where serving keeps its own state: ``<MLOPS_DATA_DIR>/serving``
    state_dir: ClassVar[DataPath] = DataPath("serving")
    model_cache_dir: ClassVar[DataPath] = state_dir / "model-cache"

    @property
    def events_wal_path(self) -> Path | None:
        """The event sink's write-ahead log, one per host (replicas may share a data folder)."""
        if not self.serving_events_wal:
            return None
        return self.state_dir / f"events.{socket.gethostname()}.wal"

    @property
    def events_redis_url(self) -> str:
        """Redis of the event streams; empty when there is none (events are then dropped)."""
        return self.redis_url(self.serving_events_redis_url)

    @property
    def api_keys_redis_url(self) -> str:
        """Redis of the key store (by default the events' Redis); empty when there is none
        (only SERVING_API_KEY is accepted then)."""
        return self.redis_url(self.serving_api_keys_redis_url, self.serving_events_redis_url)

    @property
    def needs_challenger(self) -> bool:
        return self.serving_canary_percent > 0 or self.serving_shadow

    def auth_problem(self) -> str | None:
        """Why the service must not start as configured, or None."""
        if self.serving_auth_required and not self.serving_api_key.get_secret_value():
            return (
                "SERVING_API_KEY is empty: set it in the env file (run.sh generates one) or "
                "set SERVING_AUTH_REQUIRED=false for a local experiment"
            )
        return None
