"""The Airflow REST client against a fake Airflow (httpx's mock transport)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from mlops_common.airflow import AirflowClient, AirflowError, ScheduledInterval


class FakeAirflow:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.tokens = 0
        self.expire_next = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("Authorization")
        self.calls.append((request.method, request.url.path, auth))
        if request.url.path == "/auth/token":
            body = json.loads(request.content)
            if body["password"] != "pw":
                return httpx.Response(401, json={"detail": "bad"})
            self.tokens += 1
            return httpx.Response(201, json={"access_token": f"jwt-{self.tokens}"})
        if self.expire_next:
            self.expire_next = False
            return httpx.Response(401, json={"detail": "expired"})
        if request.url.path == "/api/v2/dags/missing":
            return httpx.Response(404, json={"detail": "no such DAG"})
        if request.method == "POST" and request.url.path.endswith("/dagRuns"):
            return httpx.Response(
                409 if b"2024-01-01T05" in request.content else 200,
                json={"dag_run_id": "manual__1"},
            )
        if request.url.path.endswith("/dagRuns"):
            return httpx.Response(200, json={"dag_runs": [{"dag_run_id": "scheduled__1"}]})
        return httpx.Response(200, json={"dag_id": "d", "is_paused": False})


def client(fake: FakeAirflow, password: str = "pw") -> AirflowClient:
    return AirflowClient(
        "http://airflow:8080/", "admin", password, transport=httpx.MockTransport(fake)
    )


def test_one_token_then_a_fresh_one_when_it_expires() -> None:
    fake = FakeAirflow()
    with client(fake) as airflow:
        assert airflow.active_runs("d") == ["scheduled__1"]
        airflow.unpause("d")
        assert fake.tokens == 1
        fake.expire_next = True
        airflow.unpause("d")
    assert fake.tokens == 2
    assert fake.calls[-1][2] == "Bearer jwt-2"


def test_errors_say_what_kind() -> None:
    with client(FakeAirflow(), password="wrong") as airflow, pytest.raises(AirflowError) as bad:
        airflow.unpause("d")
    assert bad.value.reason == "airflow_auth" and "password" in str(bad.value)
    with client(FakeAirflow()) as airflow, pytest.raises(AirflowError) as missing:
        airflow.wait_for_dag("missing", timeout=0)
    assert missing.value.status == 404 and "not known to Airflow" in str(missing.value)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        AirflowClient("http://airflow:8080", "a", "b", transport=httpx.MockTransport(down)) as gone,
        pytest.raises(AirflowError) as unreachable,
    ):
        gone.active_runs("d")
    assert unreachable.value.reason == "airflow_unreachable"


def test_a_run_of_a_taken_logical_date_is_triggered_without_one() -> None:
    fake = FakeAirflow()
    taken = ScheduledInterval(
        datetime(2024, 1, 1, 5, tzinfo=UTC),
        datetime(2024, 1, 1, 5, tzinfo=UTC),
        datetime(2024, 1, 1, 6, tzinfo=UTC),
    )
    with client(fake) as airflow:
        with pytest.raises(AirflowError) as conflict:
            airflow.trigger("d", {}, taken)
        assert conflict.value.status == 409
        assert airflow.trigger("d", {}) == "manual__1"


def test_the_next_scheduled_interval_of_a_dag() -> None:
    dag = {
        "next_dagrun_logical_date": "2024-01-01T05:00:00+00:00",
        "next_dagrun_data_interval_start": "2024-01-01T05:00:00+00:00",
        "next_dagrun_data_interval_end": "2024-01-01T06:00:00+00:00",
    }
    interval = ScheduledInterval.next_of(dag)
    assert interval is not None and interval.end == datetime(2024, 1, 1, 6, tzinfo=UTC)
    assert ScheduledInterval.next_of({"next_dagrun_logical_date": None}) is None


def test_a_run_state_poll_that_times_out_once_is_asked_again() -> None:
    """A loaded api-server may not answer one poll in time: the run is still followed to its end
    (any other error still ends it)."""
    polls = {"n": 0}
    fake = FakeAirflow()

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/manual__1"):
            polls["n"] += 1
            if polls["n"] == 1:
                raise httpx.ReadTimeout("timed out", request=request)
            return httpx.Response(200, json={"state": "success"})
        if request.url.path.endswith("/taskInstances"):
            return httpx.Response(200, json={"task_instances": [{"task_id": "t", "state": "ok"}]})
        return fake(request)

    with AirflowClient(
        "http://airflow:8080", "admin", "pw", transport=httpx.MockTransport(flaky)
    ) as a:
        run = a.run_to_end("d", {}, timeout=30, poll=0)
    assert run.state == "success" and polls["n"] == 2
