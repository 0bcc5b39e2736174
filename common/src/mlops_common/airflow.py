"""The one client of Airflow 3's REST API (the launcher's bootstrap, the retraining trigger, the
tests).

Auth with the simple auth manager: ``POST /auth/token {"username", "password"}`` answers a JWT,
sent as ``Authorization: Bearer …``; a 401 later (the token expired) fetches a new one once.
Every failure is an ``AirflowError`` whose ``reason`` says what kind it is (``airflow_auth``,
``airflow_refused``, ``airflow_unreachable``) and whose ``status`` is the HTTP status, if any.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

FINISHED_STATES = frozenset({"success", "failed"})


class AirflowError(RuntimeError):
    """Airflow refused a call or could not be reached; the message names the call."""

    def __init__(self, reason: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = message
        self.status = status


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


def _dag(dag_id: str) -> str:
    return f"/api/v2/dags/{quote(dag_id, safe='')}"


def _run(dag_id: str, run_id: str) -> str:
    return f"{_dag(dag_id)}/dagRuns/{quote(run_id, safe='')}"


class AirflowClient:
    """Airflow's REST API as the platform uses it. ``transport`` replaces the network in tests."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        timeout: float = 30.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AirflowError(
                "airflow_unreachable",
                f"{method} {path}: Airflow unreachable at {self.base_url} "
                f"({type(exc).__name__}: {exc})",
            ) from None

    @staticmethod
    def _answer(response: httpx.Response, what: str) -> Any:
        status = response.status_code
        if status in (401, 403):
            raise AirflowError(
                "airflow_auth", f"{what}: HTTP {status} {response.text[:200]}", status
            )
        if status >= 300:
            raise AirflowError(
                "airflow_refused", f"{what}: HTTP {status} {response.text[:500]}", status
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AirflowError("airflow_refused", f"{what}: answer is not JSON", status) from None

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """One authenticated call; the JSON answer (None when empty)."""
        if body is not None:
            kwargs["json"] = body
        headers = {"Authorization": f"Bearer {self.token()}"}
        response = self._send(method, path, headers=headers, **kwargs)
        if response.status_code == 401:  # expired: one fresh token, then give up
            self._token = None
            headers = {"Authorization": f"Bearer {self.token()}"}
            response = self._send(method, path, headers=headers, **kwargs)
        return self._answer(response, f"{method} {path}")

    def token(self) -> str:
        if self._token is None:
            credentials = {"username": self._username, "password": self._password}
            response = self._send("POST", "/auth/token", json=credentials)
            if response.status_code in (401, 403):
                raise AirflowError(
                    "airflow_auth",
                    f"POST /auth/token: HTTP {response.status_code} (user {self._username!r}; is "
                    "the password in the env file the one Airflow was started with?)",
                    response.status_code,
                )
            answer = self._answer(response, "POST /auth/token")
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if not token:
                raise AirflowError("airflow_refused", "POST /auth/token: no access_token")
            self._token = str(token)
        return self._token

    # -- the calls ------------------------------------------------------------------------
    def dag(self, dag_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.call("GET", _dag(dag_id))
        return answer

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (right after a fresh start); the
        DAG's details (``GET /api/v2/dags/{id}``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.dag(dag_id)
            except AirflowError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise AirflowError(
                        exc.reason, f"DAG {dag_id} is not known to Airflow: {exc}", exc.status
                    ) from None
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", _dag(dag_id), {"is_paused": False})

    def trigger(
        self,
        dag_id: str,
        conf: dict[str, Any],
        interval: ScheduledInterval | None = None,
        *,
        run_id: str | None = None,
    ) -> str:
        """Create a run with ``conf``; with ``interval``, of that logical date and data interval
        (else a manual run with no logical date); with ``run_id``, of that id (a second POST of
        it is refused with HTTP 409: retrying cannot make two runs). The new run's id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id is not None:
            body["dag_run_id"] = run_id
        if interval is not None:
            body |= {
                "logical_date": interval.logical_date.isoformat(),
                "data_interval_start": interval.start.isoformat(),
                "data_interval_end": interval.end.isoformat(),
            }
        answer = self.call("POST", f"{_dag(dag_id)}/dagRuns", body)
        return str(answer["dag_run_id"]) if isinstance(answer, dict) else "?"

    def active_runs(self, dag_id: str) -> list[str]:
        """The ids of the DAG's queued and running runs."""
        params = [("state", "running"), ("state", "queued")]
        answer = self.call("GET", f"{_dag(dag_id)}/dagRuns", params=params)
        runs = answer.get("dag_runs", []) if isinstance(answer, dict) else []
        return [str(run.get("dag_run_id")) for run in runs]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.call("GET", _run(dag_id, run_id))["state"])

    def _poll_state(self, dag_id: str, run_id: str) -> str:
        """The run's state; "unknown" when the api-server did not answer this once (a loaded
        machine: the next poll asks again, the caller's deadline still holds)."""
        try:
            return self.run_state(dag_id, run_id)
        except AirflowError as exc:
            if exc.reason != "airflow_unreachable":
                raise
            return "unknown"

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        answer = self.call("GET", f"{_run(dag_id, run_id)}/taskInstances")
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
            if stand_in_for is None or exc.status != 409:
                raise
            run_id = self.trigger(dag_id, conf)
        self.unpause(dag_id)
        while True:
            state = self._poll_state(dag_id, run_id)
            if state in FINISHED_STATES:
                break
            if time.monotonic() - began > timeout:
                raise AirflowError(
                    "airflow_timeout",
                    f"DAG {dag_id} run {run_id} still {state} after {timeout:.0f} s",
                )
            time.sleep(poll)
        return DagRun(
            dag_id, run_id, state, self.task_states(dag_id, run_id), time.monotonic() - began
        )
