"""The monitoring API under fuzzing, in-process (marker ``fuzz``; ``make fuzz`` runs the full
profile, ``make test`` the fast one; ``mlops_testing.fuzz``).

- schemathesis over ``/openapi.json`` with every check (server errors, undocumented status codes
  and content types, response schemas, 405 with ``Allow``, invalid data refused, valid data
  accepted, auth enforced): the app with its workers stopped (``background=False``), a state
  database of its own, the real Redis for readiness, and the trigger tests' fake Airflow so
  that a valid firing alert goes all the way to a triggered run (cooldown 0);
- hostile bodies on the webhook (10 MB declared and streamed, 100k alerts, nesting 10k deep, wrong
  types, invalid UTF-8, lone surrogates) and out-of-range ids: a 4xx within the time bound.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mon_fixtures import REDIS_URL, WEBHOOK_SECRET
from schemathesis.checks import not_a_server_error
from test_mon_trigger import FakeAirflow  # the trigger tests' fake Airflow

from mlops_testing import fuzz
from monitoring_service.app import create_app
from monitoring_service.settings import MonitoringSettings

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(600)]

AUTH = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}
WEBHOOK = "/v1/retraining/webhook"


def _app(data: Path, airflow_url: str = "http://127.0.0.1:9") -> FastAPI:
    settings = MonitoringSettings(
        mlops_data_dir=data,
        mlops_redis_url=REDIS_URL,
        monitoring_webhook_secret=WEBHOOK_SECRET,
        mlflow_tracking_uri="http://127.0.0.1:9",  # nothing listens: unreachable
        monitoring_registry_timeout_s=1,
        monitoring_airflow_url=airflow_url,
        monitoring_trigger_cooldown_s=0,
        airflow_admin_user="admin",
        airflow_admin_password="airflow-pw",
    )
    return create_app(settings, background=False)


# the schema only (the tests send to the module's app below); the document does not depend on
# the settings
schema = fuzz.load_schema(_app(Path(tempfile.mkdtemp(prefix="mon-fuzz-schema-"))))
COUNT = fuzz.CaseCount("monitoring")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    airflow = FakeAirflow()
    made = _app(tmp_path_factory.mktemp("mon-fuzz"), airflow.url)
    yield made
    airflow.stop()
    COUNT.write()


@schema.parametrize()
def test_schemathesis_finds_nothing(case: Any, app: FastAPI) -> None:
    COUNT.add(case.operation.label)
    # /health/ready answers its documented 503 here (no Evidently loaded, no registry): the
    # readiness contract, not a server error; every other check still runs on it
    excluded = [not_a_server_error] if case.operation.path == "/health/ready" else []
    case.call_and_validate(headers=AUTH, app=app, excluded_checks=excluded)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as made:
        yield made


@pytest.mark.parametrize(
    ("name", "body"), fuzz.HOSTILE_BODIES, ids=[n for n, _ in fuzz.HOSTILE_BODIES]
)
def test_hostile_webhook_bodies_get_a_4xx(client: TestClient, name: str, body: bytes) -> None:
    answer, elapsed = fuzz.timed(lambda: client.post(WEBHOOK, content=body, headers=JSON_AUTH))
    fuzz.assert_refused(answer.status_code, elapsed)
    assert answer.json()["error"] in {"invalid_json", "invalid_payload"}, answer.text


def _payload(**alert_labels: str) -> dict[str, Any]:
    alert = {"status": "firing", "labels": {"alertname": "DriftSustained", **alert_labels}}
    head = {"version": "4", "groupKey": "g", "status": "firing", "receiver": "retraining"}
    return {**head, "alerts": [alert]}


@pytest.mark.parametrize(
    "text",
    ['"\\ud800"', '"\\udfff\\ud800"', '"a\\ud83d"'],
    ids=["lone-high", "reversed-pair", "trailing-high"],
)
def test_a_lone_surrogate_in_a_valid_payload_gets_a_400(client: TestClient, text: str) -> None:
    body = json.dumps(_payload(alertname="PLACEHOLDER")).replace('"PLACEHOLDER"', text)
    answer, elapsed = fuzz.timed(lambda: client.post(WEBHOOK, content=body, headers=JSON_AUTH))
    fuzz.assert_refused(answer.status_code, elapsed, range(400, 401))
    assert "surrogate" in answer.json()["message"]


def test_ten_megabytes_are_refused_declared_or_streamed(client: TestClient) -> None:
    fuzz.refuses_ten_megabytes(client, WEBHOOK, JSON_AUTH)


def test_many_wrong_fields_get_a_short_422(client: TestClient) -> None:
    alerts = [{"status": 1, "labels": [i]} for i in range(10_000)]
    body = json.dumps({**_payload(), "alerts": alerts}).encode()
    answer, elapsed = fuzz.timed(lambda: client.post(WEBHOOK, content=body, headers=JSON_AUTH))
    fuzz.assert_refused(answer.status_code, elapsed, range(422, 423))
    assert len(answer.content) < 4096, "the message names a few problems, not 20k"


def test_a_hundred_thousand_alerts_of_the_wrong_type_get_a_short_422(client: TestClient) -> None:
    body = json.dumps({**_payload(), "alerts": [1] * 100_000}).encode()
    answer, elapsed = fuzz.timed(lambda: client.post(WEBHOOK, content=body, headers=JSON_AUTH))
    fuzz.assert_refused(answer.status_code, elapsed, range(422, 423))
    assert len(answer.content) < 4096, "the message names a few problems, not 100k"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/windows/18446744073709551616",
        "/v1/windows/9223372036854775808",
        "/v1/windows/-1",
        "/v1/windows/0",
        "/reports/99999999999999999999999",
        "/reports/99999999999999999999999/drift",
        "/v1/windows?limit=99999999999999999999999",
    ],
)
def test_ids_out_of_range_get_a_422(client: TestClient, path: str) -> None:
    answer, elapsed = fuzz.timed(lambda: client.get(path))
    fuzz.assert_refused(answer.status_code, elapsed, range(422, 423))
    assert answer.json()["error"] == "invalid_request"


def test_a_wrong_method_gets_405_with_allow(client: TestClient) -> None:
    answer = client.request("TRACE", "/v1/windows")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert client.delete(WEBHOOK, headers=AUTH).headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("value", "status"),
    [(3, 200), (81546.0, 200), (True, 422), ("3", 422), (1.5, 422), (-1, 422)],
    ids=["int", "integral-float", "bool", "string", "fraction", "negative"],
)
def test_truncated_alerts_is_a_json_integer(client: TestClient, value: Any, status: int) -> None:
    """JSON Schema's integer: 3.0 is one, true and "3" are not (found by schemathesis both ways)."""
    body = {**_payload(), "truncatedAlerts": value}
    answer = client.post(WEBHOOK, json=body, headers=AUTH)
    assert answer.status_code == status, answer.text
