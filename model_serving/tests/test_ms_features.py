"""The online feature read: the direct Redis reader must equal Feast's own
``get_online_features`` (values, event times, unknown and stale candidates); other online
stores go through the SDK; a store that does not answer raises ``OnlineStoreError``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from ms_fixtures import (
    FEATURES,
    REDIS_URL,
    SERVICE,
    build_store,
    drop_project_keys,
    unique_name,
    write_features,
)

from model_serving.features import (
    FeastFeatureReader,
    OnlineStoreError,
    RedisFeatureReader,
    make_reader,
    redis_client_from_connection_string,
    service_spec,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = unique_name("ms_feat")
    feast_store = build_store(tmp_path_factory.mktemp("feast"), project)
    now = datetime.now(UTC)
    write_features(feast_store, range(1, 41), now - timedelta(minutes=5), seed=3)
    write_features(feast_store, range(41, 46), now - timedelta(hours=3, minutes=1), seed=4)
    write_features(feast_store, range(46, 51), now - timedelta(hours=2, minutes=50), seed=5)
    yield feast_store
    drop_project_keys(project)


def sdk_truth(store: Any, ids: list[int]) -> dict[int, tuple[list[Any], float]]:
    """Feast's answer: values and event time per entity (unknown ones have no time)."""
    response = store.get_online_features(
        features=store.get_feature_service(SERVICE),
        entity_rows=[{"driver_id": i} for i in ids],
    )
    values = response.to_dict()
    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    first = proto.results[names.index(FEATURES[0])]
    out = {}
    for row, entity in enumerate(ids):
        stamp = first.event_timestamps[row]
        out[entity] = ([values[f][row] for f in FEATURES], stamp.seconds + stamp.nanos / 1e9)
    return out


def test_service_spec_comes_from_the_feast_registry(store: Any) -> None:
    spec = service_spec(store, SERVICE)
    assert spec.join_key == "driver_id"
    assert spec.feature_names == FEATURES
    [view] = spec.views
    assert view.name == "driver_hourly_stats" and view.ttl_seconds == 3 * 3600
    assert spec.project == store.config.project


def test_redis_reader_equals_get_online_features(store: Any) -> None:
    reader = make_reader(store, SERVICE, "auto", 1.0)
    assert isinstance(reader, RedisFeatureReader)
    ids = [*range(1, 51), 999_001, 999_002]
    read = reader.read(ids)
    truth = sdk_truth(store, ids)
    for entity in ids:
        values, stamp = truth[entity]
        if entity in read.rows:
            assert read.rows[entity] == values, entity  # exact: same floats, same ints
            assert read.times[entity] == pytest.approx(stamp, abs=1e-6)
            assert isinstance(read.rows[entity][2], int)  # avg_daily_trips stays an int64
        elif entity in read.unknown:
            assert all(v is None for v in values) and entity >= 999_000
        else:
            assert entity in read.stale and 41 <= entity <= 45
    assert sorted(read.unknown) == [999_001, 999_002]
    assert sorted(read.stale) == list(range(41, 46))
    assert set(read.rows) == set(range(1, 41)) | set(range(46, 51))


def test_both_readers_agree_on_everything(store: Any) -> None:
    ids = [3, 999_003, 42, 47, 1, 2]
    now = datetime.now(UTC).timestamp()
    fast = make_reader(store, SERVICE, "redis", 1.0).read(ids, now=now)
    sdk = make_reader(store, SERVICE, "feast", 1.0).read(ids, now=now)
    assert fast == sdk


def test_staleness_follows_the_view_ttl(store: Any) -> None:
    reader = make_reader(store, SERVICE, "auto", 1.0)
    now = datetime.now(UTC).timestamp()
    assert 47 in reader.read([47], now=now).rows  # 2 h 50 min old: inside the 3 h TTL
    assert reader.read([47], now=now + 20 * 60).stale == [47]  # 20 minutes later: stale


def test_sqlite_online_store_reads_through_the_sdk(tmp_path: Path) -> None:
    sqlite_store = build_store(tmp_path / "feast", unique_name("ms_sqlite"), online="sqlite")
    write_features(sqlite_store, range(1, 6), datetime.now(UTC), seed=6)
    reader = make_reader(sqlite_store, SERVICE, "auto", 1.0)
    assert isinstance(reader, FeastFeatureReader)
    read = reader.read([1, 2, 77])
    assert set(read.rows) == {1, 2} and read.unknown == [77]
    truth = sdk_truth(sqlite_store, [1, 2])
    assert read.rows[1] == truth[1][0]
    assert "sqlite" in reader.ping()
    with pytest.raises(Exception, match="not a plain Redis"):
        make_reader(sqlite_store, SERVICE, "redis", 1.0)


def test_redis_down_raises_online_store_error(store: Any) -> None:
    spec = service_spec(store, SERVICE)
    dead = RedisFeatureReader(spec, redis_client_from_connection_string("127.0.0.1:1", 0.2))
    began = time.perf_counter()
    with pytest.raises(OnlineStoreError, match="unavailable"):
        dead.read([1])
    assert time.perf_counter() - began < 1.0  # no retries with backoff on the request path
    with pytest.raises(OnlineStoreError):
        dead.ping()


def test_a_corrupt_stored_value_leaves_only_that_driver_out(store: Any) -> None:
    reader = make_reader(store, SERVICE, "redis", 1.0)
    assert isinstance(reader, RedisFeatureReader)
    client = redis.Redis.from_url(REDIS_URL)
    key = reader.redis_key(12)
    field = reader.spec.views[0].redis_fields[0]
    saved = client.hget(key, field)
    client.hset(key, field, b"\xff\xfe not a protobuf \x00")
    try:
        read = reader.read([11, 12, 13])
    finally:
        client.hset(key, field, saved)  # type: ignore[arg-type]
    assert set(read.rows) == {11, 13}
    assert read.invalid == [12] and read.unknown == [12]  # reported as unknown


def test_unknown_feature_service_is_named(store: Any) -> None:
    with pytest.raises(Exception, match="no_such_service"):
        make_reader(store, "no_such_service", "auto", 1.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:6379,db=3", {"host": "127.0.0.1", "port": 6379, "db": 3}),
        ("redis-host:6380", {"host": "redis-host", "port": 6380, "db": 0}),
        ("redis://:pw@127.0.0.1:6381/2", {"host": "127.0.0.1", "port": 6381, "db": 2}),
    ],
)
def test_connection_strings(text: str, expected: dict[str, Any]) -> None:
    client = redis_client_from_connection_string(text, 0.5)
    kwargs = client.connection_pool.connection_kwargs
    assert {k: kwargs[k] for k in expected} == expected
    assert kwargs["socket_timeout"] == 0.5


def test_the_test_redis_is_the_stores_redis(store: Any) -> None:
    """Sanity of this suite: the fixture store writes to the Redis the tests configure."""
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{store.config.project}", count=1000))
    assert len(keys) == 50
