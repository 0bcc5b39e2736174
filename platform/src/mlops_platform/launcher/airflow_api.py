"""A small client of Airflow 3's REST API (what the launcher's bootstrap needs, nothing more).

Auth with the simple auth manager: ``POST /auth/token {"username", "password"}`` answers a JWT,
sent as ``Authorization: Bearer …``; a 401 later (the token expired) fetches a new one once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FINISHED_STATES = frozenset({"success", "failed"})


class AirflowError(RuntimeError):
    """Airflow refused a call or could not be reached; the message names the call."""


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed_tasks(self) -> list[str]:
        return sorted(task for task, state in self.tasks.items() if state != "success")


@dataclass(frozen=True)
class ScheduledInterval:
    """A scheduled DAG run: its logical date and data interval ``[start, end)`` (UTC)."""

    logical_date: datetime
    start: datetime
    end: datetime

    @classmethod
    def next_of(cls, dag: dict[str, Any]) -> ScheduledInterval | None:
        """The next scheduled run of a DAG as ``GET /api/v2/dags/{id}`` answers it (None for a
        DAG with external triggers only)."""
        fields = (
            dag.get("next_dagrun_logical_date"),
            dag.get("next_dagrun_data_interval_start"),
            dag.get("next_dagrun_data_interval_end"),
        )
        if None in fields:
            return None
        logical, start, end = (datetime.fromisoformat(str(f)).astimezone(UTC) for f in fields)
        return cls(logical, start, end)


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._timeout = timeout
        self._token: str | None = None

    # -- plumbing -------------------------------------------------------------------------
    def _send(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            try:
                return self._send(method, path, body)
            except urllib.error.HTTPError as exc:
                if exc.code != 401:
                    raise
                self._token = None  # expired: one fresh token, then give up
                return self._send(method, path, body)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise AirflowError(f"{method} {path}: HTTP {exc.code} {detail}") from None
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AirflowError(f"{method} {path}: Airflow unreachable ({reason})") from None

    def token(self) -> str:
        if self._token is None:
            try:
                answer = self._send(
                    "POST",
                    "/auth/token",
                    {"username": self._username, "password": self._password},
                    auth=False,
                )
            except urllib.error.HTTPError as exc:
                raise AirflowError(
                    f"POST /auth/token: HTTP {exc.code} (user {self._username!r}; is the "
                    "password in the env file the one Airflow was started with?)"
                ) from None
            except (OSError, urllib.error.URLError) as exc:
                raise AirflowError(f"POST /auth/token: Airflow unreachable ({exc})") from None
            self._token = str(answer["access_token"])
        return self._token

    # -- the calls ------------------------------------------------------------------------
    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (right after a fresh start); the
        DAG's details (``GET /api/v2/dags/{id}``)."""
        deadline = time.monotonic() + timeout
        path = f"/api/v2/dags/{urllib.parse.quote(dag_id)}"
        while True:
            try:
                dag: dict[str, Any] = self._call("GET", path)
                return dag
            except AirflowError as exc:
                if "HTTP 404" not in str(exc) or time.monotonic() > deadline:
                    raise AirflowError(f"DAG {dag_id} is not known to Airflow: {exc}") from None
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/api/v2/dags/{urllib.parse.quote(dag_id)}", {"is_paused": False})

    def trigger(
        self, dag_id: str, conf: dict[str, Any], interval: ScheduledInterval | None = None
    ) -> str:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if interval is not None:
            body |= {
                "logical_date": interval.logical_date.isoformat(),
                "data_interval_start": interval.start.isoformat(),
                "data_interval_end": interval.end.isoformat(),
            }
        answer = self._call("POST", f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns", body)
        return str(answer["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        dag, run = urllib.parse.quote(dag_id), urllib.parse.quote(run_id, safe="")
        return str(self._call("GET", f"/api/v2/dags/{dag}/dagRuns/{run}")["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        dag, run = urllib.parse.quote(dag_id), urllib.parse.quote(run_id, safe="")
        answer = self._call("GET", f"/api/v2/dags/{dag}/dagRuns/{run}/taskInstances")
        return {ti["task_id"]: str(ti["state"]) for ti in answer["task_instances"]}

    def run_to_end(
        self,
        dag_id: str,
        conf: dict[str, Any],
        timeout: float,
        poll: float = 3.0,
        *,
        stand_in_for: ScheduledInterval | None = None,
    ) -> DagRun:
        """Trigger, unpause and wait for the run to finish (``AirflowError`` on timeout).

        The run is triggered before the DAG is unpaused: the scheduler creates no run for a
        paused DAG. With ``stand_in_for`` (the DAG's next scheduled interval) the run carries that
        interval's logical date and data interval, so it takes the scheduled run's place: Airflow
        creates no run for a logical date that has one and schedules the interval after it.
        When a run of that logical date exists already (HTTP 409), it is triggered without one.
        """
        began = time.monotonic()
        try:
            run_id = self.trigger(dag_id, conf, stand_in_for)
        except AirflowError as exc:
            if stand_in_for is None or "HTTP 409" not in str(exc):
                raise
            run_id = self.trigger(dag_id, conf)
        self.unpause(dag_id)
        while True:
            state = self.run_state(dag_id, run_id)
            if state in FINISHED_STATES:
                break
            if time.monotonic() - began > timeout:
                raise AirflowError(f"DAG {dag_id} run {run_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)
        return DagRun(
            dag_id, run_id, state, self.task_states(dag_id, run_id), time.monotonic() - began
        )
