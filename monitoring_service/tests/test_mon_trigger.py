"""The retraining trigger behind Alertmanager's webhook: authentication with the shared secret,
bad input at the edge, and every decision (triggered, cooldown, run in flight, resolved, not a
retraining alert, disabled, Airflow unreachable / refusing) recorded, counted and logged.

Airflow here is a **fake** HTTP server speaking the few REST calls the trigger makes
(``POST /auth/token``, ``GET .../dagRuns?state=running&state=queued``, ``PATCH /dags/{id}``,
``POST .../dagRuns``), because a real Airflow api-server takes about 20 s to start and these
are a dozen cases that each need Airflow in a particular state. The real Airflow path — the
launcher's monitoring service triggering the real ``driver_ranking_training`` DAG — is
``test_mon_launcher.py``.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from mon_fixtures import WEBHOOK_SECRET, SettingsFactory, metric_values

from mlops_testing.http import send_json
from mlops_testing.redis_server import free_port
from monitoring_service.app import create_app

DAG = "driver_ranking_training"
AUTH = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}


@dataclass
class FakeAirflow:
    """Airflow 3's REST API as far as the trigger uses it; records every request."""

    user: str = "admin"
    password: str = "airflow-pw"
    dags: set[str] = field(default_factory=lambda: {DAG})
    active: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, list[str]], Any, dict[str, str]]] = field(
        default_factory=list
    )
    paused: bool = True
    runs: int = 0
    #: run ids created, in order
    created: list[str] = field(default_factory=list)
    #: the next this many run POSTs create the run, then drop the connection unanswered
    lose_replies: int = 0

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                send_json(self, status, body)

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append(
                    (method, url.path, parse_qs(url.query), body, dict(self.headers))
                )
                if url.path == "/auth/token" and method == "POST":
                    if body == {"username": fake.user, "password": fake.password}:
                        return self._answer(201, {"access_token": "jwt-123"})
                    return self._answer(401, {"detail": "Invalid credentials"})
                if self.headers.get("Authorization") != "Bearer jwt-123":
                    return self._answer(401, {"detail": "Not authenticated"})
                parts = url.path.split("/")
                if len(parts) < 5 or parts[4] not in fake.dags:
                    return self._answer(404, {"detail": "DAG not found"})
                if method == "GET" and len(parts) == 7 and parts[5] == "dagRuns":
                    if parts[6] not in fake.created:
                        return self._answer(404, {"detail": "DAG run not found"})
                    return self._answer(200, {"dag_run_id": parts[6], "state": "queued"})
                if method == "GET" and url.path.endswith("/dagRuns"):
                    states = parse_qs(url.query).get("state", [])
                    runs = [r for r in fake.active if r["state"] in states]
                    return self._answer(200, {"dag_runs": runs, "total_entries": len(runs)})
                if method == "PATCH":
                    fake.paused = bool(body["is_paused"])
                    return self._answer(200, {"dag_id": parts[4], "is_paused": fake.paused})
                if method == "POST" and url.path.endswith("/dagRuns"):
                    run_id = body.get("dag_run_id") or f"manual__{fake.runs + 1}"
                    if run_id in fake.created:
                        return self._answer(409, {"detail": f"run {run_id} already exists"})
                    fake.runs += 1
                    fake.created.append(run_id)
                    if fake.lose_replies:
                        fake.lose_replies -= 1
                        self.close_connection = True
                        return None  # created, never answered
                    return self._answer(
                        200, {"dag_run_id": run_id, "state": "queued", "conf": body["conf"]}
                    )
                return self._answer(405, {"detail": "no"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def calls(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p, *_ in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    fake = FakeAirflow()
    yield fake
    fake.stop()


def _alert(name: str = "DriftSustained", status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": name,
            "severity": "warning",
            "service": "monitoring",
            "model_version": "3",
            **labels,
        },
        "annotations": {"summary": f"{name} for 3 windows"},
        "startsAt": "2026-01-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph?g0.expr=...",
        "fingerprint": "abc123",
    }


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """An Alertmanager webhook (version 4) as Alertmanager 0.25 sends it."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DriftSustained"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "retraining",
        "groupLabels": {"alertname": "DriftSustained"},
        "commonLabels": {"alertname": "DriftSustained"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts) or [_alert()],
    }


@pytest.fixture
def start(make_settings: SettingsFactory, airflow: FakeAirflow) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values = {
            "monitoring_airflow_url": airflow.url,
            "airflow_admin_user": airflow.user,
            "airflow_admin_password": airflow.password,
            "monitoring_trigger_cooldown_s": 3600,
            **overrides,
        }
        client = TestClient(create_app(make_settings(**values), background=False))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/v1/retraining/webhook", json=body, headers=AUTH if headers is None else headers
    )


def test_a_firing_alert_triggers_the_training_dag_with_the_alert_in_its_conf(
    start: Any, airflow: FakeAirflow, caplog: pytest.LogCaptureFixture
) -> None:
    client = start()
    with caplog.at_level("INFO", logger="monitoring_service.trigger"):
        answer = _post(client, payload(_alert("DriftSustained"), _alert("QualityLow")))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "triggered" and body["reason"] == "alert"
    assert body["dag_run_id"] == airflow.created[0]
    assert body["dag_run_id"].startswith("retraining__")
    assert body["alertnames"] == ["DriftSustained", "QualityLow"]
    assert airflow.calls() == [
        ("POST", "/auth/token"),
        ("GET", f"/api/v2/dags/{DAG}/dagRuns"),
        ("PATCH", f"/api/v2/dags/{DAG}"),
        ("POST", f"/api/v2/dags/{DAG}/dagRuns"),
    ]
    _, _, query, _, headers = airflow.requests[1]
    assert sorted(query["state"]) == ["queued", "running"]
    assert headers["Authorization"] == "Bearer jwt-123"
    assert airflow.requests[2][3] == {"is_paused": False} and airflow.paused is False
    run = airflow.requests[3][3]
    assert run["logical_date"] is None
    conf = run["conf"]
    assert set(conf) == {"alert", "reason"}
    assert conf["alert"]["labels"]["alertname"] == "DriftSustained"
    assert conf["alert"]["fingerprint"] == "abc123"
    assert conf["alert"]["group"]["alertnames"] == ["DriftSustained", "QualityLow"]
    assert conf["alert"]["group"]["receiver"] == "retraining"
    assert conf["reason"].startswith("Alertmanager alert DriftSustained firing")
    assert "DriftSustained for 3 windows" in conf["reason"]
    [record] = [r for r in caplog.records if r.name == "monitoring_service.trigger"]
    assert record.decision == "triggered" and record.dag_run_id == airflow.created[0]  # type: ignore[attr-defined]

    # the same alert again: the cooldown holds, Airflow is not even asked
    before = len(airflow.requests)
    again = _post(client, payload()).json()
    assert (again["decision"], again["reason"]) == ("skipped", "cooldown")
    assert "left" in again["detail"]
    assert len(airflow.requests) == before

    listed = client.get("/v1/retraining/decisions").json()
    assert [(d["decision"], d["reason"]) for d in listed["decisions"]] == [
        ("skipped", "cooldown"),
        ("triggered", "alert"),
    ]
    assert listed["totals"] == {"skipped/cooldown": 1, "triggered/alert": 1}
    text = client.get("/metrics").text
    decisions = metric_values(text, "monitoring_retraining_decisions_total")
    assert decisions[(("decision", "triggered"), ("reason", "alert"))] == 1
    assert decisions[(("decision", "skipped"), ("reason", "cooldown"))] == 1
    assert metric_values(text, "monitoring_retraining_last_triggered_timestamp_seconds")[()] > 0


def test_the_configured_window_reaches_the_run_conf(start: Any, airflow: FakeAirflow) -> None:
    """An alert says the world changed recently: MONITORING_TRIGGER_WINDOW_DAYS makes the
    triggered run train on the last days only (the training DAG's ``window_days`` param)."""
    client = start(monitoring_trigger_window_days=3)
    answer = _post(client, payload(_alert("QualityLow")))
    assert answer.json()["decision"] == "triggered", answer.text
    conf = airflow.requests[-1][3]["conf"]
    assert conf["window_days"] == 3
    assert conf["alert"]["labels"]["alertname"] == "QualityLow"


def test_a_run_in_flight_is_not_doubled(start: Any, airflow: FakeAirflow) -> None:
    client = start(monitoring_trigger_cooldown_s=0)
    airflow.active = [{"dag_run_id": "manual__7", "state": "running"}]
    body = _post(client, payload()).json()
    assert (body["decision"], body["reason"]) == ("skipped", "run_in_flight")
    assert "manual__7" in body["detail"]
    assert ("POST", f"/api/v2/dags/{DAG}/dagRuns") not in airflow.calls()
    airflow.active = [{"dag_run_id": "manual__8", "state": "queued"}]
    assert _post(client, payload()).json()["reason"] == "run_in_flight"
    airflow.active = []
    assert _post(client, payload()).json()["decision"] == "triggered"


def test_concurrent_webhooks_trigger_once(start: Any, airflow: FakeAirflow) -> None:
    client = start()
    results: list[str] = []

    def send() -> None:
        results.append(_post(client, payload()).json()["decision"])

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["skipped"] * 5 + ["triggered"]
    assert airflow.runs == 1


@pytest.mark.parametrize(
    ("overrides", "body", "reason"),
    [
        ({}, payload(_alert(status="resolved"), status="resolved"), "resolved"),
        (
            {"monitoring_trigger_alertnames": "DataDriftSustained,QualityLow"},
            payload(_alert("TargetDown")),
            "not_a_retraining_alert",
        ),
        ({"monitoring_trigger_enabled": False}, payload(), "disabled"),
    ],
    ids=["resolved", "not-a-retraining-alert", "disabled"],
)
def test_skips_without_asking_airflow(
    start: Any,
    airflow: FakeAirflow,
    overrides: dict[str, Any],
    body: dict[str, Any],
    reason: str,
) -> None:
    answer = _post(start(**overrides), body)
    assert answer.status_code == 200
    assert (answer.json()["decision"], answer.json()["reason"]) == ("skipped", reason)
    assert airflow.requests == []


def test_the_allow_list_picks_the_alert_for_the_conf(start: Any, airflow: FakeAirflow) -> None:
    client = start(monitoring_trigger_alertnames="QualityLow")
    body = _post(client, payload(_alert("TargetDown"), _alert("QualityLow"))).json()
    assert body["decision"] == "triggered"
    assert airflow.requests[-1][3]["conf"]["alert"]["labels"]["alertname"] == "QualityLow"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [("down", "airflow_unreachable"), ("password", "airflow_auth"), ("dag", "airflow_refused")],
)
def test_airflow_failures_are_errors_alertmanager_retries(
    start: Any, airflow: FakeAirflow, setup: str, reason: str
) -> None:
    overrides: dict[str, Any] = {}
    if setup == "down":
        overrides["monitoring_airflow_url"] = f"http://127.0.0.1:{free_port()}"
    elif setup == "password":
        overrides["airflow_admin_password"] = "wrong"
    else:
        overrides["monitoring_training_dag_id"] = "no_such_dag"
    client = start(**overrides)
    answer = _post(client, payload())
    assert answer.status_code == 502  # Alertmanager retries a 5xx notification
    assert (answer.json()["decision"], answer.json()["reason"]) == ("error", reason)
    # an error is no trigger: the cooldown does not start
    airflow_ok = start()
    assert _post(airflow_ok, payload()).json()["decision"] == "triggered"


def test_decisions_and_the_cooldown_survive_a_restart(start: Any, airflow: FakeAirflow) -> None:
    first = start()
    assert _post(first, payload()).json()["decision"] == "triggered"
    first.__exit__(None, None, None)
    second = start()  # same state database
    assert _post(second, payload()).json()["reason"] == "cooldown"
    text = second.get("/metrics").text
    decisions = metric_values(text, "monitoring_retraining_decisions_total")
    assert decisions[(("decision", "triggered"), ("reason", "alert"))] == 1  # restored


# --- the edge ---------------------------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Token abc"}, 401),
        ({"Authorization": "Basic !!!"}, 401),
        ({"Authorization": "Bearer wrong-secret"}, 403),
        (_basic("alertmanager", "wrong"), 403),
        (_basic("alertmanager", WEBHOOK_SECRET), 200),
        ({"Authorization": f"bearer {WEBHOOK_SECRET}"}, 200),
    ],
    ids=[
        "none",
        "empty-bearer",
        "other-scheme",
        "bad-basic",
        "wrong-bearer",
        "wrong-basic",
        "basic",
        "bearer-lowercase",
    ],
)
def test_the_shared_secret(
    start: Any, airflow: FakeAirflow, headers: dict[str, str], status: int
) -> None:
    answer = _post(start(), payload(), headers=headers)
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["error"] == "unauthorized"
    if status >= 400:
        assert airflow.requests == []


def test_auth_can_be_switched_off_for_experiments(start: Any) -> None:
    answer = _post(start(monitoring_webhook_auth_required=False), payload(), headers={})
    assert answer.status_code == 200


def test_bad_input_gets_a_4xx_naming_the_problem(start: Any, airflow: FakeAirflow) -> None:
    client = start(monitoring_max_body_bytes=4096)
    url = "/v1/retraining/webhook"
    not_json = client.post(
        url, content=b"{oops", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_json"
    text = client.post(url, content=b"{}", headers={**AUTH, "Content-Type": "text/plain"})
    assert text.status_code == 415
    old = _post(client, {**payload(), "version": "3"})
    assert old.status_code == 422 and "version" in old.json()["message"]
    empty = _post(client, {**payload(), "alerts": []})
    assert empty.status_code == 422 and "alerts" in empty.json()["message"]
    wrong = _post(client, {**payload(), "alerts": [{"status": "burning", "labels": {}}]})
    assert wrong.status_code == 422 and "alerts.0.status" in wrong.json()["message"]
    big = _post(client, payload(*[_alert(f"A{i}") for i in range(40)]))
    assert big.status_code == 413
    assert client.get(url).status_code == 405
    assert airflow.requests == []
    text_metrics = client.get("/metrics").text
    statuses = metric_values(text_metrics, "monitoring_webhook_requests_total")
    assert {dict(k)["status"] for k in statuses} >= {"400", "413", "415", "422"}


def test_refusals_of_the_secret_are_counted(start: Any) -> None:
    client = start()
    assert _post(client, payload(), headers={}).status_code == 401
    assert _post(client, payload(), headers={"Authorization": "Bearer wrong"}).status_code == 403
    statuses = metric_values(client.get("/metrics").text, "monitoring_webhook_requests_total")
    assert statuses[(("status", "401"),)] == 1
    assert statuses[(("status", "403"),)] == 1


def test_the_schema_declares_the_secret_the_webhook_enforces(start: Any) -> None:
    """One security dependency: what /openapi.json documents is what refuses the request."""
    client = start()
    schema = client.get("/openapi.json").json()
    scheme = schema["components"]["securitySchemes"]["webhookSecret"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "basic" in scheme["description"].lower()
    secured = {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert secured == {("POST", "/v1/retraining/webhook")}
    webhook = schema["paths"]["/v1/retraining/webhook"]["post"]
    assert webhook["security"] == [{"webhookSecret": []}]
    assert set(schema["paths"]) >= {"/health/ready", "/metrics", "/v1/windows", "/reports"}
    assert "/openapi.json" not in schema["paths"]
    assert client.get("/docs").status_code == 404  # no Swagger UI (as before)


def test_a_lost_trigger_answer_starts_the_cooldown_and_makes_one_run(
    start: Any, airflow: FakeAirflow
) -> None:
    """Airflow creates the run but its answer is lost: the retry (same run id) is answered 409,
    the run is looked up, the decision is ``triggered`` and the cooldown holds."""
    airflow.lose_replies = 1
    client = start()
    body = _post(client, payload()).json()
    assert (body["decision"], body["reason"]) == ("triggered", "alert"), body
    assert airflow.runs == 1 and body["dag_run_id"] == airflow.created[0]
    posts = [c for c in airflow.calls() if c == ("POST", f"/api/v2/dags/{DAG}/dagRuns")]
    assert len(posts) == 2
    again = _post(client, payload()).json()
    assert (again["decision"], again["reason"]) == ("skipped", "cooldown")
    assert airflow.runs == 1
