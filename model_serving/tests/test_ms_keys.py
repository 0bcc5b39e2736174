"""Per-client API keys: the store (a Redis hash, hashed secrets), the key ring the edge asks
(bootstrap key plus the store's keys, re-read without a restart), the scopes of the routes (one
declaration for the docs and the edge), the ``keys`` commands, the client label."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from ms_fixtures import API_KEY, REDIS_URL, auth, unique_name

from model_serving.app import create_app
from model_serving.cli import main
from model_serving.keys import SCOPES, KeyProblem, KeyRing, KeyStore
from model_serving.settings import ServingSettings


@pytest.fixture
def hash_key() -> Iterator[str]:
    name = unique_name("ms_test_keys")
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name)


@pytest.fixture
def store(hash_key: str) -> KeyStore:
    return KeyStore(redis.Redis.from_url(REDIS_URL), hash_key)


def settings(hash_key: str, tmp_path: Path) -> ServingSettings:
    return ServingSettings(
        mlops_data_dir=tmp_path,
        serving_api_key=API_KEY,
        serving_api_keys_redis_url=REDIS_URL,
        serving_api_keys_hash=hash_key,
        serving_access_log=False,
    )


def test_keys_are_stored_hashed_and_listed_without_the_secret(store: KeyStore) -> None:
    secret = store.create("dispatcher", ["predict", "feedback"])
    raw = redis.Redis.from_url(REDIS_URL).hgetall(store.hash_key)
    assert list(raw) == [b"dispatcher"] and secret.encode() not in raw[b"dispatcher"]
    stored = json.loads(raw[b"dispatcher"])
    assert stored["scopes"] == ["predict", "feedback"] and stored["scrypt"]["hash"]
    [listed] = store.list()
    assert listed.name == "dispatcher" and listed.scopes == ("predict", "feedback")
    assert secret.startswith(f"msk_{listed.key_id}_") and listed.created.tzinfo is not None
    assert store.create("batch", ["admin"]) != secret
    with pytest.raises(KeyProblem, match="already exists"):
        store.create("dispatcher", ["predict"])
    with pytest.raises(KeyProblem, match="unknown scope"):
        store.create("x", ["predict", "root"])
    with pytest.raises(KeyProblem, match="reserved"):
        store.create("bootstrap", ["predict"])
    assert store.revoke("dispatcher") and not store.revoke("dispatcher")
    assert [k.name for k in store.list()] == ["batch"]


def test_the_ring_knows_the_bootstrap_key_and_rereads_the_store(store: KeyStore) -> None:
    ring = KeyRing(API_KEY, store)
    boot = ring.authenticate(API_KEY)
    assert boot is not None and boot.name == "bootstrap" and boot.scopes == frozenset(SCOPES)
    secret = store.create("dispatcher", ["predict"])
    assert ring.authenticate(secret) is None  # not re-read yet
    ring.refresh()
    client = ring.authenticate(secret)
    assert client is not None and client.name == "dispatcher"
    assert client.scopes == frozenset({"predict"})
    assert ring.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert ring.authenticate("msk_nope_nope") is None and ring.authenticate("") is None
    store.revoke("dispatcher")
    ring.refresh()
    assert ring.authenticate(secret) is None  # a cached verification does not outlive revoke


def test_routes_need_their_scope_and_revocation_needs_no_restart(
    hash_key: str, store: KeyStore, tmp_path: Path
) -> None:
    app = create_app(
        settings(hash_key, tmp_path), store_factory=lambda: None, start_background=False
    )
    ring = app.state.service.keys
    predict_only = store.create("dispatcher", ["predict"])
    ring.refresh()
    with TestClient(app) as client:
        feedback = {"request_id": "r", "driver_id": 1, "trip_completed": True}
        refused = client.post("/v1/feedback", json=feedback, headers=auth(predict_only))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "insufficient_scope"
        assert "feedback" in refused.json()["message"]
        assert client.get("/v1/model", headers=auth(predict_only)).status_code == 403
        unread = client.post(  # refused at the edge, before the body is read
            "/v1/feedback",
            content=b"{not json",
            headers={**auth(predict_only), "Content-Type": "application/json"},
        )
        assert unread.status_code == 403 and unread.json()["error"] == "insufficient_scope"
        allowed = client.post("/v1/predict", json={"driver_ids": [1]}, headers=auth(predict_only))
        assert allowed.status_code == 503  # past the key: no model in this app
        assert client.get("/v1/model", headers=auth()).status_code not in (401, 403)
        store.revoke("dispatcher")
        ring.refresh()
        gone = client.post("/v1/predict", json={"driver_ids": [1]}, headers=auth(predict_only))
        assert gone.status_code == 403 and gone.json()["error"] == "forbidden"
        client.request("BREW", "/health/live")
        text = client.get("/metrics").text
    assert "serving_api_keys_store_up 1.0" in text and "serving_api_keys_loaded 0.0" in text
    assert 'client="dispatcher"' in text and 'client="bootstrap"' in text
    assert 'method="other"' in text and "BREW" not in text


def test_openapi_declares_the_scope_of_each_route(hash_key: str, tmp_path: Path) -> None:
    app = create_app(
        settings(hash_key, tmp_path), store_factory=lambda: None, start_background=False
    )
    spec = app.openapi()
    scheme = next(iter(spec["components"]["securitySchemes"]))
    assert spec["paths"]["/v1/predict"]["post"]["security"] == [{scheme: ["predict"]}]
    assert spec["paths"]["/v1/feedback"]["post"]["security"] == [{scheme: ["feedback"]}]
    assert spec["paths"]["/v1/model"]["get"]["security"] == [{scheme: ["admin"]}]


def test_the_keys_commands(
    hash_key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_API_KEY", API_KEY)
    monkeypatch.setenv("SERVING_API_KEYS_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("SERVING_API_KEYS_HASH", hash_key)
    assert main(["keys", "create", "dispatcher", "--scopes", "predict,feedback"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert secret.startswith("msk_")
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert "dispatcher" in listed and "predict,feedback" in listed and "bootstrap" in listed
    assert secret not in listed and API_KEY not in listed
    assert secret.split("_")[1][-4:] in listed
    assert main(["keys", "create", "dispatcher"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["keys", "revoke", "dispatcher"]) == 0
    assert main(["keys", "revoke", "dispatcher"]) == 1
    assert "no key named" in capsys.readouterr().err


def test_an_unreadable_store_keeps_the_keys_read_last(store: KeyStore) -> None:
    seen: list[tuple[bool, int]] = []
    ring = KeyRing(API_KEY, store, on_refresh=lambda ok, count: seen.append((ok, count)))
    secret = store.create("dispatcher", ["predict"])
    assert ring.refresh() and seen == [(True, 1)]
    ring.store = KeyStore(redis.Redis.from_url("redis://127.0.0.1:1/0"), store.hash_key)
    assert not ring.refresh() and seen[-1] == (False, 1)
    client = ring.authenticate(secret)
    assert client is not None and client.name == "dispatcher"
    assert ring.authenticate(API_KEY) is not None


def test_the_keys_commands_name_an_unreachable_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_API_KEYS_REDIS_URL", "redis://:store-secret@127.0.0.1:1/0")
    assert main(["keys", "create", "dispatcher"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the key store at redis://:***@127.0.0.1:1/0" in err
    assert "shown once" not in err and "store-secret" not in err
