"""The retraining trigger: Alertmanager's webhook in, a training DAG run out.

``POST /v1/retraining/webhook`` takes Alertmanager's webhook payload (version 4), authenticated
with the shared secret ``MONITORING_WEBHOOK_SECRET`` (``Authorization: Bearer <secret>``, as
``http_config.authorization: {credentials: <secret>}`` sends it, or basic auth with the secret as
the password). Every call ends in one decision, recorded in the state database (``GET
/v1/retraining/decisions``), counted in ``monitoring_retraining_decisions_total{decision,reason}``
and logged as one line:

=========  ======================  ==============================================================
decision   reason                  when
=========  ======================  ==============================================================
skipped    disabled                ``MONITORING_TRIGGER_ENABLED=false``
skipped    resolved                no firing alert in the payload (a resolve notification)
skipped    not_a_retraining_alert  no firing alert is in ``MONITORING_TRIGGER_ALERTNAMES`` (if set)
skipped    cooldown                a run was triggered less than the cooldown ago
skipped    run_in_flight           the DAG has a queued or running run (Airflow's REST API)
triggered  alert                   a run was created (DAG unpaused first), the alert in its conf
error      airflow_unreachable     Airflow did not answer (HTTP 502 to Alertmanager: it retries)
error      airflow_auth            Airflow refused the credentials (502)
error      airflow_refused         Airflow answered an unexpected status, e.g. unknown DAG (502)
=========  ======================  ==============================================================

Decisions are serialised (one at a time), so two webhooks arriving together trigger at most one
run. The cooldown counts from the last ``triggered`` decision, which survives restarts.

The run's conf is ``{"alert": {...}, "reason": "..."}`` (the DAG's params ``alert`` and
``reason``), plus ``window_days`` when ``MONITORING_TRIGGER_WINDOW_DAYS`` is set. ``alert`` is the
first firing alert (labels, annotations, startsAt, fingerprint, generatorURL) plus ``group``
(receiver, groupKey, externalURL, groupLabels, the firing alert names); the training pipeline
tags the run with ``trigger.alertname`` from its labels.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import Store

log = logging.getLogger("monitoring_service.trigger")

Decision = Literal["triggered", "skipped", "error"]


class AlertmanagerAlert(BaseModel):
    """One alert of the webhook payload."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload, version 4."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=10_000)


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    reason: str
    detail: str
    alertnames: tuple[str, ...]
    dag_run_id: str | None = None
    decision_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "detail": self.detail,
            "alertnames": list(self.alertnames),
            "dag_run_id": self.dag_run_id,
            "decision_id": self.decision_id,
        }


class AirflowError(RuntimeError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class AirflowClient:
    """The few calls of Airflow 3's REST API the trigger needs (simple auth manager: a JWT from
    ``POST /auth/token``, fetched for every decision; decisions are rare)."""

    def __init__(
        self, settings: MonitoringSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base = settings.monitoring_airflow_url
        self.user = settings.airflow_admin_user
        self.password = settings.airflow_admin_password
        self.timeout = settings.monitoring_airflow_timeout_s
        self.transport = transport

    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=self.timeout, transport=self.transport)

    @staticmethod
    def _check(response: httpx.Response, what: str, ok: tuple[int, ...] = (200,)) -> Any:
        if response.status_code in (401, 403):
            raise AirflowError(
                "airflow_auth", f"{what}: HTTP {response.status_code} {response.text[:200]}"
            )
        if response.status_code not in ok:
            raise AirflowError(
                "airflow_refused", f"{what}: HTTP {response.status_code} {response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError:
            raise AirflowError("airflow_refused", f"{what}: answer is not JSON") from None

    def _call(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AirflowError(
                "airflow_unreachable", f"{method} {self.base}{path}: {type(exc).__name__}: {exc}"
            ) from None

    def token(self, client: httpx.Client) -> str:
        body = self._check(
            self._call(
                client,
                "POST",
                "/auth/token",
                json={
                    "username": self.user,
                    "password": self.password.get_secret_value(),
                },
            ),
            "POST /auth/token",
            ok=(200, 201),
        )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise AirflowError("airflow_refused", "POST /auth/token: no access_token")
        return str(token)

    def active_runs(self, dag_id: str) -> tuple[httpx.Client, dict[str, str], list[str]]:
        """Log in, then the ids of the DAG's queued and running runs."""
        client = self._client()
        try:
            headers = {"Authorization": f"Bearer {self.token(client)}"}
            path = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns"
            body = self._check(
                self._call(
                    client,
                    "GET",
                    path,
                    headers=headers,
                    params=[("state", "running"), ("state", "queued")],
                ),
                f"GET {path}",
            )
        except BaseException:
            client.close()
            raise
        runs = body.get("dag_runs", []) if isinstance(body, dict) else []
        return client, headers, [str(r.get("dag_run_id")) for r in runs]

    def trigger(
        self, client: httpx.Client, headers: dict[str, str], dag_id: str, conf: dict[str, Any]
    ) -> str:
        dag = quote(dag_id, safe="")
        self._check(
            self._call(
                client, "PATCH", f"/api/v2/dags/{dag}", headers=headers, json={"is_paused": False}
            ),
            f"PATCH /api/v2/dags/{dag}",
        )
        body = self._check(
            self._call(
                client,
                "POST",
                f"/api/v2/dags/{dag}/dagRuns",
                headers=headers,
                json={"logical_date": None, "conf": conf},
            ),
            f"POST /api/v2/dags/{dag}/dagRuns",
            ok=(200, 201),
        )
        return str(body.get("dag_run_id")) if isinstance(body, dict) else "?"


def run_conf(
    payload: AlertmanagerWebhook,
    firing: list[AlertmanagerAlert],
    window_days: float | None = None,
) -> dict[str, Any]:
    """The DAG run's conf: the first firing alert, the group, a one-line reason and, when given,
    the training window in days."""
    first = firing[0]
    names = sorted({a.labels.get("alertname", "?") for a in firing})
    alert = first.model_dump(mode="json")
    alert["group"] = {
        "receiver": payload.receiver,
        "groupKey": payload.groupKey,
        "externalURL": payload.externalURL,
        "groupLabels": payload.groupLabels,
        "alertnames": names,
        "firing": len(firing),
    }
    name = first.labels.get("alertname", "?")
    text = first.annotations.get("summary") or first.annotations.get("description") or ""
    labels = ", ".join(
        f"{k}={v}" for k, v in sorted(first.labels.items()) if k not in ("alertname",)
    )
    reason = f"Alertmanager alert {name} firing ({labels})" + (f": {text}" if text else "")
    conf: dict[str, Any] = {"alert": alert, "reason": reason[:1000]}
    if window_days is not None:
        conf["window_days"] = window_days
    return conf


class RetrainingTrigger:
    def __init__(
        self,
        settings: MonitoringSettings,
        store: Store,
        metrics: MonitoringMetrics,
        airflow: AirflowClient | None = None,
        now: Any = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.airflow = airflow or AirflowClient(settings)
        self.now = now
        self._lock = threading.Lock()
        last = store.last_triggered()
        if last is not None:
            metrics.last_triggered.set(last)

    def handle(self, payload: AlertmanagerWebhook) -> Outcome:
        with self._lock:
            outcome = self._decide(payload)
            decision_id = self.store.record_decision(
                outcome.decision,
                outcome.reason,
                outcome.detail,
                outcome.alertnames,
                outcome.dag_run_id,
                now=self.now(),
            )
        self.metrics.decisions.labels(outcome.decision, outcome.reason).inc()
        if outcome.decision == "triggered":
            self.metrics.last_triggered.set(self.now())
        level = logging.WARNING if outcome.decision == "error" else logging.INFO
        log.log(
            level,
            "retraining %s (%s): %s",
            outcome.decision,
            outcome.reason,
            outcome.detail,
            extra={
                "decision": outcome.decision,
                "reason": outcome.reason,
                "alertnames": list(outcome.alertnames),
                "dag_run_id": outcome.dag_run_id,
                "group_key": payload.groupKey,
            },
        )
        return Outcome(**{**outcome.__dict__, "decision_id": decision_id})

    def _decide(self, payload: AlertmanagerWebhook) -> Outcome:
        s = self.settings
        names = tuple(sorted({a.labels.get("alertname", "?") for a in payload.alerts}))

        def out(decision: Decision, reason: str, detail: str, run: str | None = None) -> Outcome:
            return Outcome(decision, reason, detail, names, run)

        if not s.monitoring_trigger_enabled:
            return out("skipped", "disabled", "MONITORING_TRIGGER_ENABLED is false")
        firing = [a for a in payload.alerts if a.status == "firing"]
        if not firing:
            return out("skipped", "resolved", f"no firing alert ({payload.status} notification)")
        allowed = set(s.monitoring_trigger_alertnames)
        if allowed:
            firing = [a for a in firing if a.labels.get("alertname") in allowed]
            if not firing:
                return out(
                    "skipped",
                    "not_a_retraining_alert",
                    f"none of {list(names)} is in MONITORING_TRIGGER_ALERTNAMES {sorted(allowed)}",
                )
        last = self.store.last_triggered()
        now = self.now()
        cooldown = s.monitoring_trigger_cooldown_s
        if last is not None and now - last < cooldown:
            return out(
                "skipped",
                "cooldown",
                f"last run triggered {now - last:.0f} s ago, cooldown {cooldown:.0f} s "
                f"({cooldown - (now - last):.0f} s left)",
            )
        dag_id = s.monitoring_training_dag_id
        try:
            client, headers, active = self.airflow.active_runs(dag_id)
            try:
                if active:
                    return out(
                        "skipped",
                        "run_in_flight",
                        f"{dag_id} has {len(active)} queued or running run(s): {active[:5]}",
                    )
                conf = run_conf(payload, firing, s.monitoring_trigger_window_days)
                run_id = self.airflow.trigger(client, headers, dag_id, conf)
            finally:
                client.close()
        except AirflowError as exc:
            return out("error", exc.reason, exc.detail)
        return out("triggered", "alert", f"{dag_id} run {run_id}: {conf['reason']}", run_id)
