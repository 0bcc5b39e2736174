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

A decision names its run (``dag_run_id`` ``retraining__<uuid>``) and retries the POST (tenacity,
``TRIGGER_ATTEMPTS``) when Airflow's answer is lost: a retry answered 409 means an earlier attempt
created the run, which is then looked up and counts as triggered (the cooldown starts). A lost
answer can therefore neither leave the cooldown unstarted nor create a second run.

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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from mlops_common.airflow import AirflowClient, AirflowError
from mlops_common.events.alerts import AlertmanagerAlert, AlertmanagerWebhook
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import Store

log = logging.getLogger("monitoring_service.trigger")

Decision = Literal["triggered", "skipped", "error"]
#: POSTs of one decision's run when Airflow's answer is lost (connection dropped, timeout)
TRIGGER_ATTEMPTS = 3


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


AirflowFactory = Callable[[], AirflowClient]


def airflow_factory(settings: MonitoringSettings) -> AirflowFactory:
    """A new client (and so a new token) for every decision: decisions are rare."""
    return lambda: AirflowClient(
        settings.monitoring_airflow_url,
        settings.airflow_admin_user,
        settings.airflow_admin_password.get_secret_value(),
        settings.monitoring_airflow_timeout_s,
    )


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
        airflow: AirflowFactory | None = None,
        now: Any = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.airflow = airflow or airflow_factory(settings)
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
            with self.airflow() as airflow:
                active = airflow.active_runs(dag_id)
                if active:
                    return out(
                        "skipped",
                        "run_in_flight",
                        f"{dag_id} has {len(active)} queued or running run(s): {active[:5]}",
                    )
                conf = run_conf(payload, firing, s.monitoring_trigger_window_days)
                airflow.unpause(dag_id)
                run_id = trigger_once(airflow, dag_id, conf, f"retraining__{uuid.uuid4().hex}")
        except AirflowError as exc:
            return out("error", exc.reason, exc.detail)
        return out("triggered", "alert", f"{dag_id} run {run_id}: {conf['reason']}", run_id)


def _lost(exc: BaseException) -> bool:
    return isinstance(exc, AirflowError) and exc.reason == "airflow_unreachable"


def trigger_once(airflow: AirflowClient, dag_id: str, conf: dict[str, Any], run_id: str) -> str:
    """Create the run ``run_id``, retrying when the answer is lost; a retry answered 409 means an
    earlier attempt created it (looked up: ``AirflowError`` if it is not there after all)."""
    attempts = 0

    @retry(
        retry=retry_if_exception(_lost),
        stop=stop_after_attempt(TRIGGER_ATTEMPTS),
        wait=wait_exponential(multiplier=0.5, max=2),
        reraise=True,
    )
    def post() -> str:
        nonlocal attempts
        attempts += 1
        try:
            return airflow.trigger(dag_id, conf, run_id=run_id)
        except AirflowError as exc:
            if exc.status != 409 or attempts == 1:
                raise
        state = airflow.run_state(dag_id, run_id)
        log.info("run %s was created by an attempt whose answer was lost (%s)", run_id, state)
        return run_id

    return post()
