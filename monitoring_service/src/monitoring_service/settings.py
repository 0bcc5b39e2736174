"""The monitoring component's one settings object (pydantic-settings).

Built on the shared base (``mlops_common.settings``): values come from, in order of precedence,
keyword arguments, the process environment, the env file (``MLOPS_ENV_FILE`` when set, else
``.env`` in the working directory), the defaults below.
Every field is read from the environment variable of the same name in upper case
(``monitoring_port`` <- ``MONITORING_PORT``); the platform-wide ones keep their platform names
(``MLOPS_DATA_DIR``, ``MLOPS_ONLINE_STORE_URL``, ``MLOPS_REDIS_URL``, ``MLFLOW_TRACKING_URI``,
``MLOPS_BIND_HOST``), and the ones shared with serving or Airflow read those names too (the event
streams' Redis and names, the model name, Airflow's admin credentials), so one env file
configures both ends.

The retry bound ``MONITORING_MAX_DELIVERIES`` (default 5, at least 2): a stream entry that fails
processing that many times (the broker's delivery count; retries after Redis or the state store
was unreachable do not count) goes to the dead-letter stream with the error and is acknowledged.

Secrets: ``MONITORING_WEBHOOK_SECRET`` has no usable default. With
``MONITORING_WEBHOOK_AUTH_REQUIRED=true`` (the default) ``serve`` refuses to start without it.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from mlops_common.events.serving import DEFAULT_FEEDBACK_STREAM, DEFAULT_PREDICTION_STREAM
from mlops_common.settings import DataPath, PlatformSettings
from monitoring_service.windows import WindowPolicy

_NAME = re.compile(r"^[A-Za-z0-9._:@-]{1,100}$")

DriftMethod = Literal[
    "ks",
    "chisquare",
    "z",
    "wasserstein",
    "psi",
    "jensenshannon",
    "kl_div",
    "anderson",
    "mannw",
    "ed",
    "es",
    "t_test",
    "cramer_von_mises",
    "hellinger",
    "fisher_exact",
    "g_test",
    "empirical_mmd",
    "TVD",
]


def _default_consumer_name() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:80] or "monitoring"
    return f"{host}-1"


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class MonitoringSettings(PlatformSettings):
    """Everything the monitoring service reads from its environment."""

    # --- the HTTP server -------------------------------------------------------------------
    monitoring_port: int = Field(default=8309, ge=1, le=65535)
    monitoring_log_level: str = "INFO"
    #: largest accepted webhook body, bytes (413 above)
    monitoring_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # --- state -----------------------------------------------------------------------------
    #: the SQLite file of the window state (default <MLOPS_DATA_DIR>/monitoring/monitoring.db)
    monitoring_db_path: Path | None = None

    # --- the event streams (serving's) ------------------------------------------------------
    #: Redis of the streams (empty: SERVING_EVENTS_REDIS_URL, MLOPS_REDIS_URL, else the online
    #: store's Redis: what serving writes to)
    monitoring_events_redis_url: str = Field(
        default="",
        validation_alias=_alias("MONITORING_EVENTS_REDIS_URL", "SERVING_EVENTS_REDIS_URL"),
    )
    monitoring_prediction_stream: str = Field(
        default=DEFAULT_PREDICTION_STREAM,
        validation_alias=_alias("MONITORING_PREDICTION_STREAM", "SERVING_EVENTS_PREDICTION_STREAM"),
    )
    monitoring_feedback_stream: str = Field(
        default=DEFAULT_FEEDBACK_STREAM,
        validation_alias=_alias("MONITORING_FEEDBACK_STREAM", "SERVING_EVENTS_FEEDBACK_STREAM"),
    )
    monitoring_consumer_group: str = "monitoring"
    #: keep it stable across restarts: a restarted consumer resumes its own pending entries
    monitoring_consumer_name: str = Field(default_factory=_default_consumer_name)
    #: where a new group starts: 0 (everything still in the streams) or $ (new entries only)
    monitoring_start_id: str = "0"
    monitoring_batch_size: int = Field(default=500, ge=1, le=10_000)
    monitoring_block_ms: int = Field(default=1000, ge=10, le=60_000)
    #: entries another consumer name held this long unacknowledged are taken over
    monitoring_claim_min_idle_ms: int = Field(default=60_000, ge=100)
    monitoring_claim_interval_s: float = Field(default=30.0, gt=0)
    #: events dated further ahead than this are dead-lettered (they would hold a window open)
    monitoring_max_future_skew_s: float = Field(default=300.0, ge=0)
    #: malformed entries of both streams go here, with the reason and the original fields
    monitoring_dead_letter_stream: str = "mlops:monitoring:dead"
    monitoring_dead_letter_maxlen: int = Field(default=100_000, ge=100)
    monitoring_backoff_max_s: float = Field(default=5.0, gt=0, le=600)
    #: the retry bound: an entry that fails processing this many times (deliveries) is
    #: dead-lettered with the error (``mlops_common.streams``)
    monitoring_max_deliveries: int = Field(default=5, ge=2, le=1000)

    # --- windows ---------------------------------------------------------------------------
    #: a window closes at this many predictions ...
    monitoring_window_size: int = Field(default=1000, ge=1, le=1_000_000)
    #: ... or when this span (seconds of prediction time) has elapsed, whichever comes first
    monitoring_window_seconds: float = Field(default=900.0, gt=0)
    #: labels of a window's predictions count for its quality when their feedback time is at
    #: most this long after the window's last prediction (0: quality at close, no wait)
    monitoring_label_grace_s: float = Field(default=600.0, ge=0)
    #: quality waits this much longer for labels still in serving's event buffer, seconds
    monitoring_label_slack_s: float = Field(default=5.0, ge=0, le=600)
    #: fewer scored candidate rows than this: no drift computed for the window
    monitoring_min_rows: int = Field(default=30, ge=1)
    #: fewer labelled rows (or one class only): no quality computed for the window
    monitoring_min_labelled_rows: int = Field(default=20, ge=2)
    #: full Evidently reports kept on disk (the newest windows')
    monitoring_max_reports: int = Field(default=20, ge=0, le=10_000)
    #: windows remembered (summaries in /v1/windows)
    monitoring_keep_windows: int = Field(default=2000, ge=10)
    #: labels and final windows' predictions kept (joins, late-label accounting), seconds
    monitoring_retention_s: float = Field(default=86400.0, ge=3600)

    # --- drift and quality (Evidently) --------------------------------------------------------
    #: drift method for every column (empty: Evidently's choice per column type and size)
    monitoring_drift_method: DriftMethod | None = None
    #: drift threshold of that method (empty: the method's default)
    monitoring_drift_threshold: float | None = Field(default=None, gt=0)
    #: share of drifted features at or above which the dataset counts as drifted
    monitoring_drift_share: float = Field(default=0.5, gt=0, le=1)
    #: probability at or above which a row is predicted positive (precision, recall, F1, accuracy)
    monitoring_probas_threshold: float = Field(default=0.5, gt=0, lt=1)

    # --- the model and its reference ------------------------------------------------------------
    monitoring_model_name: str = Field(
        default="driver_ranking",
        validation_alias=_alias("MONITORING_MODEL_NAME", "SERVING_MODEL_NAME"),
    )
    monitoring_champion_alias: str = Field(
        default="champion",
        validation_alias=_alias("MONITORING_CHAMPION_ALIAS", "SERVING_CHAMPION_ALIAS"),
    )
    #: how often the registry is asked where the champion alias points, seconds
    monitoring_poll_interval_s: float = Field(default=10.0, gt=0, le=300)
    #: how often the running experiments are read out (A/B statistics as metrics) and a
    #: bandit's allocation is recomputed from the labelled outcomes, seconds
    monitoring_experiments_interval_s: float = Field(default=30.0, gt=0, le=3600)
    #: seed of the Thompson sampling's random draws (None: a fresh one per process)
    monitoring_bandit_seed: int | None = None
    monitoring_registry_timeout_s: float = Field(default=5.0, gt=0, le=120)

    # --- the retraining trigger -----------------------------------------------------------------
    monitoring_webhook_secret: SecretStr = Field(default=SecretStr(""))
    #: False only for local experiments: the webhook then accepts any caller
    monitoring_webhook_auth_required: bool = True
    #: False: every alert is answered with decision skipped (reason disabled)
    monitoring_trigger_enabled: bool = True
    #: only these alert names trigger (empty: every alert routed to the webhook)
    monitoring_trigger_alertnames: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: no second training run within this many seconds of the last one triggered
    monitoring_trigger_cooldown_s: float = Field(default=3600.0, ge=0)
    #: train the triggered run on the last this many days (the DAG's ``window_days``): an alert
    #: says the world changed recently; empty: the training pipeline's configured window
    monitoring_trigger_window_days: float | None = Field(default=None, gt=0, le=92)
    monitoring_training_dag_id: str = "driver_ranking_training"
    monitoring_airflow_url: str = "http://127.0.0.1:8080"
    monitoring_airflow_timeout_s: float = Field(default=10.0, gt=0, le=120)
    airflow_admin_user: str = "admin"
    airflow_admin_password: SecretStr = Field(default=SecretStr(""))

    @field_validator("monitoring_trigger_alertnames", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        """A comma-separated list (or a JSON list) in the environment."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> MonitoringSettings:
        self.monitoring_log_level = self.monitoring_log_level.upper()
        for field in ("monitoring_consumer_group", "monitoring_consumer_name"):
            if not _NAME.match(getattr(self, field)):
                raise ValueError(
                    f"{field} must be 1-100 characters of letters, digits and ._:@- "
                    f"(got {getattr(self, field)!r})"
                )
        if self.monitoring_prediction_stream == self.monitoring_feedback_stream:
            raise ValueError("the prediction and feedback streams must differ")
        if self.monitoring_start_id != "$" and not re.match(
            r"^\d+(-\d+)?$", self.monitoring_start_id
        ):
            raise ValueError(
                "monitoring_start_id must be 0, $ or a stream id "
                f"(got {self.monitoring_start_id!r})"
            )
        self.monitoring_airflow_url = self.monitoring_airflow_url.rstrip("/")
        return self

    # --- derived ---------------------------------------------------------------------------
    #: where the service keeps its own state: ``<MLOPS_DATA_DIR>/monitoring``
    state_dir: ClassVar[DataPath] = DataPath("monitoring")
    reports_dir: ClassVar[DataPath] = state_dir / "reports"
    reference_cache_dir: ClassVar[DataPath] = state_dir / "reference-cache"

    @property
    def db_path(self) -> Path:
        if self.monitoring_db_path is not None:
            return self.monitoring_db_path.expanduser().resolve()
        return self.state_dir / "monitoring.db"

    @property
    def window_policy(self) -> WindowPolicy:
        return WindowPolicy(
            size=self.monitoring_window_size,
            seconds=self.monitoring_window_seconds,
            label_grace_s=self.monitoring_label_grace_s,
            slack_s=self.monitoring_label_slack_s,
        )

    @property
    def events_redis_url(self) -> str:
        """Redis of the event streams; empty when there is none."""
        return self.redis_url(self.monitoring_events_redis_url)

    def problems(self) -> list[str]:
        """Why ``serve`` must not start as configured (empty: it may)."""
        found = []
        if self.monitoring_webhook_auth_required and not (
            self.monitoring_webhook_secret.get_secret_value()
        ):
            found.append(
                "MONITORING_WEBHOOK_SECRET is empty: set it in the env file (run.sh generates "
                "one) or set MONITORING_WEBHOOK_AUTH_REQUIRED=false for a local experiment"
            )
        if not self.events_redis_url:
            found.append(
                "no Redis for the event streams: set MONITORING_EVENTS_REDIS_URL, "
                "SERVING_EVENTS_REDIS_URL or MLOPS_REDIS_URL (serving writes its events there)"
            )
        return found
