"""Every malformed input gets a 4xx whose message names the problem, never a 500.

The edge and the validation run before any model or store is touched, so these tests use the
app without its background parts (no registry, no store: a valid body would get 503)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ms_fixtures import API_KEY, auth

from model_serving.app import create_app
from model_serving.settings import ServingSettings

MAX = 200
LIMIT = 4096


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = ServingSettings(
        serving_api_key=API_KEY,
        mlops_data_dir=tmp_path_factory.mktemp("data"),
        serving_max_body_bytes=LIMIT,
        serving_access_log=False,
    )
    app = create_app(settings, store_factory=lambda: None, start_background=False)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def post_json(client: TestClient, path: str, body: Any) -> Any:
    return client.post(
        path,
        content=json.dumps(body),
        headers={
            **auth(),
            "Content-Type": "application/json",
        },
    )


PREDICT_CASES: list[tuple[str, Any, str]] = [
    ("missing driver_ids", {}, "driver_ids: Field required"),
    ("empty list", {"driver_ids": []}, "driver_ids: List should have at least 1 item"),
    (
        "oversized list",
        {"driver_ids": list(range(1, MAX + 2))},
        f"driver_ids: List should have at most {MAX} items",
    ),
    ("duplicates", {"driver_ids": [3, 1, 3]}, "driver_ids must be unique; repeated: [3]"),
    (
        "negative id",
        {"driver_ids": [5, -1]},
        "driver_ids.1: Input should be greater than or equal to 1",
    ),
    ("zero id", {"driver_ids": [0]}, "driver_ids.0: Input should be greater than or equal to 1"),
    ("id as string", {"driver_ids": ["5"]}, "driver_ids.0: must be an integer, not a string"),
    ("id as float", {"driver_ids": [1.5]}, "driver_ids.0: must be an integer, not 1.5"),
    ("id as bool", {"driver_ids": [True]}, "driver_ids.0: must be an integer, not a boolean"),
    ("null id", {"driver_ids": [None]}, "driver_ids.0: must be an integer, not null"),
    ("id as list", {"driver_ids": [[1]]}, "driver_ids.0: must be an integer, not an array"),
    (
        "id beyond int64",
        {"driver_ids": [2**70]},
        "driver_ids.0: Input should be less than or equal to 9007199254740991",
    ),
    (
        "id beyond 2**53",
        {"driver_ids": [2**53]},
        "driver_ids.0: Input should be less than or equal to 9007199254740991",
    ),
    ("ids not a list", {"driver_ids": "1,2"}, "driver_ids: Input should be a valid list"),
    ("ids an object", {"driver_ids": {"a": 1}}, "driver_ids: Input should be a valid list"),
    (
        "request id not a string",
        {"request_id": 12, "driver_ids": [1]},
        "request_id: Input should be a valid string",
    ),
    (
        "request id empty",
        {"request_id": "", "driver_ids": [1]},
        "request_id: String should match pattern",
    ),
    (
        "request id too long",
        {"request_id": "r" * 129, "driver_ids": [1]},
        "request_id: String should match pattern",
    ),
    (
        "request id with spaces",
        {"request_id": "a b", "driver_ids": [1]},
        "request_id: String should match pattern",
    ),
    (
        "unknown field",
        {"driver_ids": [1], "drivers": [2]},
        "drivers: Extra inputs are not permitted",
    ),
    ("body is a list", [1, 2], "Input should be a valid dictionary or object"),
    ("body is a string", "hello", "Input should be a valid dictionary or object"),
    ("body is null", None, "body: a JSON object is required"),
]


FEEDBACK_CASES: list[tuple[str, Any, str]] = [
    ("missing request id", {"driver_id": 1, "trip_completed": True}, "request_id: Field required"),
    ("missing label", {"request_id": "r", "driver_id": 1}, "trip_completed: Field required"),
    (
        "label as string",
        {"request_id": "r", "driver_id": 1, "trip_completed": "yes"},
        "trip_completed: Input should be a valid boolean",
    ),
    (
        "label as number",
        {"request_id": "r", "driver_id": 1, "trip_completed": 1},
        "trip_completed: Input should be a valid boolean",
    ),
    (
        "negative driver",
        {"request_id": "r", "driver_id": -3, "trip_completed": False},
        "driver_id: Input should be greater than or equal to 1",
    ),
    (
        "driver as string",
        {"request_id": "r", "driver_id": "3", "trip_completed": False},
        "driver_id: must be an integer, not a string",
    ),
    (
        "bad request id",
        {"request_id": "x y", "driver_id": 3, "trip_completed": False},
        "request_id: String should match pattern",
    ),
]


MALFORMED_BODIES = [
    pytest.param(path, body, message, id=f"{path} {case}")
    for path, cases in (("/v1/predict", PREDICT_CASES), ("/v1/feedback", FEEDBACK_CASES))
    for case, body, message in cases
]


@pytest.mark.parametrize(("path", "body", "message"), MALFORMED_BODIES)
def test_malformed_bodies_are_rejected(
    client: TestClient, path: str, body: Any, message: str
) -> None:
    response = post_json(client, path, body)
    assert response.status_code == 422, (response.status_code, response.text)
    payload = response.json()
    assert payload["error"] == "invalid_request"
    assert message in payload["message"], payload["message"]
    assert payload["request_id"]


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/feedback"])
@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"driver_ids": [1,', "body is not valid JSON"),
        (b"{driver_ids: [1]}", "body is not valid JSON"),
        (b'{"driver_ids": [1]} trailing', "body is not valid JSON"),
        (b"\xff\xfe\x00garbage", "body is not valid JSON"),
    ],
    ids=["truncated", "unquoted key", "trailing garbage", "not utf-8"],
)
def test_invalid_json_is_a_400(client: TestClient, path: str, raw: bytes, fragment: str) -> None:
    response = client.post(
        path, content=raw, headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_json"
    assert fragment in response.json()["message"]


def test_empty_body_is_a_422_naming_it(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", content=b"", headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "a JSON object is required" in response.json()["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_wrong_content_type_is_a_415(client: TestClient, content_type: str | None) -> None:
    headers = auth()
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/v1/predict", content=b'{"driver_ids": [1]}', headers=headers)
    assert response.status_code == 415, response.text
    assert "Content-Type must be application/json" in response.json()["message"]


def test_whole_numbers_are_integers_as_json_schema_says(client: TestClient) -> None:
    """JSON Schema's integer includes 2.0: accepted (no model here, hence 503), not 422."""
    response = post_json(client, "/v1/predict", {"driver_ids": [2.0, 3]})
    assert response.status_code == 503, response.text


def test_json_with_charset_and_vendor_types_are_accepted(client: TestClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = client.post(
            "/v1/predict",
            content=b'{"driver_ids": [1]}',
            headers={**auth(), "Content-Type": content_type},
        )
        # accepted by the edge: no model in this app, so 503 "no_model" (not 415/422)
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "no_model"


def test_body_over_the_limit_is_a_413(client: TestClient) -> None:
    big = json.dumps({"driver_ids": [1], "pad": "x" * LIMIT}).encode()
    response = client.post(
        "/v1/predict", content=big, headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert f"larger than {LIMIT} bytes" in response.json()["message"]


def test_streamed_body_over_the_limit_is_a_413(client: TestClient) -> None:
    """No Content-Length (chunked): the limit is enforced while reading."""

    def chunks() -> Iterator[bytes]:
        yield b'{"driver_ids": [1], "pad": "'
        for _ in range(LIMIT // 512 + 2):
            yield b"x" * 512
        yield b'"}'

    response = client.post(
        "/v1/predict", content=chunks(), headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text


def test_auth_is_checked_before_the_body(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401


def test_unknown_route_and_wrong_method_are_json_4xx(client: TestClient) -> None:
    missing = client.get("/v1/nothing-here", headers=auth())
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.get("/v1/predict", headers=auth())
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def test_supplied_request_id_header_is_echoed_and_a_bad_one_replaced(client: TestClient) -> None:
    good = client.get("/health/live", headers={"X-Request-ID": "trace-123"})
    assert good.headers["x-request-id"] == "trace-123"
    bad = client.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"
    assert len(bad.headers["x-request-id"]) == 32


def test_not_ready_without_a_model_says_why(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["model"]["ok"] is False
