"""The prediction API under fuzzing, in-process (marker ``fuzz``; ``make fuzz`` runs the full
profile, ``make test`` the fast one; ``mlops_testing.fuzz``).

The app is the real one (edge, API key, routes, error bodies) with nothing started
(``start_background=False``) and a champion swapped in by hand: a function model over the
in-memory feature reader of ``test_ms_predictor`` (drivers 1 to 49 known). Nothing is sent
anywhere (the event sink is not started; its bounded buffer takes the events).

- schemathesis over ``/openapi.json`` with every check, the API key in every request (its own
  coverage cases drop it and expect 401);
- hostile bodies on both JSON routes (10 MB declared and streamed, 100k ids, nesting 10k deep,
  wrong types, invalid UTF-8, lone surrogates): a 4xx within the time bound.
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
from ms_fixtures import API_KEY, REDIS_URL
from test_ms_predictor import NOW, MemoryReader, model

from mlops_testing import fuzz
from model_serving.app import create_app
from model_serving.lifecycle import ServingState
from model_serving.settings import ServingSettings

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(600)]

KEY = {"X-API-Key": API_KEY}
JSON_KEY = {**KEY, "Content-Type": "application/json"}
ROUTES = ("/v1/predict", "/v1/feedback")


def _app(data: Path) -> FastAPI:
    settings = ServingSettings(
        mlops_data_dir=data,
        serving_api_key=API_KEY,
        mlflow_tracking_uri="http://127.0.0.1:9",  # nothing listens: unreachable
        mlops_redis_url=REDIS_URL,
        mlops_online_store_url=REDIS_URL,
        serving_access_log=False,
    )
    app = create_app(settings, store_factory=lambda: None, start_background=False)
    reader = MemoryReader({i: ([10 + i, 4.5, 0.5], NOW - 60) for i in range(1, 50)})
    app.state.service.manager.state = ServingState(champion=model(reader))
    return app


# the schema only (the tests send to the module's app below). The experiment admin routes are
# left out: their semantic refusals (422 for schema-valid arms whose weights do not sum to 1) and
# the shared GET/POST path's 405 are not yet what --checks all wants; test_ms_experiments covers
# them explicitly.
schema = fuzz.load_schema(_app(Path(tempfile.mkdtemp(prefix="ms-fuzz-schema-")))).exclude(
    path_regex=r"^/v1/experiments"
)
COUNT = fuzz.CaseCount("serving")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    yield _app(tmp_path_factory.mktemp("ms-fuzz"))
    COUNT.write()


@schema.parametrize()
def test_schemathesis_finds_nothing(case: Any, app: FastAPI) -> None:
    COUNT.add(case.operation.label)
    case.call_and_validate(headers=KEY, app=app)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as made:
        yield made


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("name", "body"), fuzz.HOSTILE_BODIES, ids=[n for n, _ in fuzz.HOSTILE_BODIES]
)
def test_hostile_bodies_get_a_4xx(client: TestClient, route: str, name: str, body: bytes) -> None:
    answer, elapsed = fuzz.timed(lambda: client.post(route, content=body, headers=JSON_KEY))
    fuzz.assert_refused(answer.status_code, elapsed)
    assert answer.json()["error"] in {"invalid_json", "invalid_request"}, answer.text


@pytest.mark.parametrize("route", ROUTES)
def test_ten_megabytes_are_refused_declared_or_streamed(client: TestClient, route: str) -> None:
    fuzz.refuses_ten_megabytes(client, route, JSON_KEY)


@pytest.mark.parametrize(
    ("ids", "status"),
    [(list(range(1, 100_001)), 413), ([1] * 30_000, 422), (list(range(1, 10_001)), 422)],
    ids=["100k-ids", "30k-duplicates-under-the-limit", "10k-ids-under-the-limit"],
)
def test_too_many_ids_are_refused(client: TestClient, ids: list[int], status: int) -> None:
    body = json.dumps({"driver_ids": ids}, separators=(",", ":")).encode()
    answer, elapsed = fuzz.timed(lambda: client.post("/v1/predict", content=body, headers=JSON_KEY))
    fuzz.assert_refused(answer.status_code, elapsed, range(status, status + 1))
    assert len(answer.content) < 16_384, "the answer names the problem, not every id"


@pytest.mark.parametrize(
    "body",
    [
        {"driver_ids": [2**64]},
        {"driver_ids": [-1]},
        {"driver_ids": ["1"]},
        {"driver_ids": [1.5]},
        {"driver_ids": [True]},
        {"driver_ids": 1},
        {"driver_ids": [1], "request_id": 5},
        {"driver_ids": [1], "request_id": "x" * 10_000},
    ],
    ids=["over-64-bits", "negative", "string", "float", "bool", "not-a-list", "id-int", "id-long"],
)
def test_wrong_types_get_a_422(client: TestClient, body: dict[str, Any]) -> None:
    answer, elapsed = fuzz.timed(lambda: client.post("/v1/predict", json=body, headers=KEY))
    fuzz.assert_refused(answer.status_code, elapsed, range(422, 423))


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/predict", b'{"driver_ids": [1], "request_id": "\\ud800"}'),
        ("/v1/feedback", b'{"request_id": "\\ud800", "driver_id": 1, "trip_completed": true}'),
    ],
    ids=["predict", "feedback"],
)
def test_a_lone_surrogate_in_the_request_id_gets_a_4xx(
    client: TestClient, route: str, body: bytes
) -> None:
    answer, elapsed = fuzz.timed(lambda: client.post(route, content=body, headers=JSON_KEY))
    fuzz.assert_refused(answer.status_code, elapsed)
