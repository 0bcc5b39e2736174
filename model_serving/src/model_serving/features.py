"""Online features of a request's candidates, read through the model's Feast feature service.

Two readers with one contract (``FeatureReader.read``), chosen per feature service:

- ``RedisFeatureReader`` (the fast path, used when the online store is Redis): one pipelined
  ``HMGET`` per candidate and feature view, decoding Feast's own layout (a hash per entity key:
  the serialized entity key followed by the project name; one field per feature, the
  little-endian murmur3 of ``<view>:<feature>``, holding a serialized ``feast.types.Value``;
  ``_ts:<view>`` holding the event time as a protobuf ``Timestamp``). The test suite checks it
  against ``FeatureStore.get_online_features`` value for value.
- ``FeastFeatureReader``: Feast's SDK (``get_online_features`` with the feature service), for
  every other online store (SQLite in the embedded default, anything Feast supports).

What the feature service is made of (views, features, TTLs, the entity's join key) always comes
from the Feast registry: nothing about the feature repository is copied here.

Classification, identical in both readers: a candidate is *unknown* when a view of the service
has no row for it (no event time, or every feature null), *stale* when a view's row is older
than that view's TTL (a TTL of zero means no limit); both are left out of ``rows``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import mmh3
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

FeatureValue = float | int | str | bool | None
#: encoded Redis keys kept per reader (a few MB at most; cleared when full)
KEY_CACHE_SIZE = 100_000


class FeatureServiceError(RuntimeError):
    """The feature service cannot be read as a candidate ranking needs (the message says why)."""


class OnlineStoreError(RuntimeError):
    """The online store did not answer."""


@dataclass(frozen=True)
class ViewSpec:
    """One feature view of a feature service, as the online store keeps it."""

    name: str
    features: tuple[str, ...]
    ttl_seconds: float

    @property
    def redis_fields(self) -> tuple[bytes, ...]:
        """HMGET fields: one per feature, then the event time."""
        hashed = tuple(
            mmh3.hash(f"{self.name}:{feature}", signed=False).to_bytes(4, "little")
            for feature in self.features
        )
        return (*hashed, f"_ts:{self.name}".encode())


@dataclass(frozen=True)
class ServiceSpec:
    """A feature service resolved against the registry."""

    name: str
    project: str
    join_key: str
    views: tuple[ViewSpec, ...]
    entity_key_serialization_version: int

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f for view in self.views for f in view.features)


@dataclass
class FeatureRead:
    """The online features of a request's candidates."""

    #: scorable candidates -> feature values in ``ServiceSpec.feature_names`` order
    rows: dict[int, list[FeatureValue]] = field(default_factory=dict)
    #: scorable candidates -> event time of their oldest view row (unix seconds)
    times: dict[int, float] = field(default_factory=dict)
    #: no row, or (also in ``invalid``) a row that cannot be model input
    unknown: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    #: rows left out for their values: corrupt in the store, not a number, or missing for a
    #: model that refuses NaN (reported as unknown, counted apart)
    invalid: list[int] = field(default_factory=list)

    def leave_out(self, entity: int) -> None:
        """Report ``entity`` as unknown for its values (``invalid``), out of ``rows``."""
        self.rows.pop(entity, None)
        self.times.pop(entity, None)
        self.unknown.append(entity)
        self.invalid.append(entity)


def service_spec(store: Any, service_name: str) -> ServiceSpec:
    """Resolve a feature service of a ``feast.FeatureStore``; raise ``FeatureServiceError`` when
    it does not exist or does not have exactly one integer entity key (a driver id)."""
    try:
        service = store.get_feature_service(service_name)
    except Exception as exc:
        raise FeatureServiceError(
            f"feature service {service_name!r} is not in the Feast registry: {exc}"
        ) from None
    views: list[ViewSpec] = []
    join_keys: set[str] = set()
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        keys = list(view.join_keys) or [
            store.get_entity(entity).join_key for entity in view.entities
        ]
        if len(keys) != 1:
            raise FeatureServiceError(
                f"feature view {view.name!r} has join keys {keys}: ranking needs exactly one"
            )
        join_keys.add(keys[0])
        ttl = view.ttl.total_seconds() if view.ttl else 0.0
        views.append(
            ViewSpec(
                name=view.name,
                features=tuple(f.name for f in projection.features),
                ttl_seconds=ttl,
            )
        )
    if not views:
        raise FeatureServiceError(f"feature service {service_name!r} has no feature views")
    if len(join_keys) != 1:
        raise FeatureServiceError(
            f"feature service {service_name!r} mixes join keys {sorted(join_keys)}"
        )
    names = [f for view in views for f in view.features]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise FeatureServiceError(
            f"feature service {service_name!r} has features of the same name in several views: "
            f"{duplicated}"
        )
    return ServiceSpec(
        name=service_name,
        project=store.config.project,
        join_key=join_keys.pop(),
        views=tuple(views),
        entity_key_serialization_version=int(store.config.entity_key_serialization_version),
    )


def _value(proto: Any) -> FeatureValue:
    kind = proto.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    value = getattr(proto, kind)
    if hasattr(value, "val"):  # list types: not model inputs, but never crash on them
        return str(list(value.val))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value  # type: ignore[no-any-return]


class FeatureReader(ABC):
    """Reads a feature service's online features for a list of entity ids."""

    kind: str

    def __init__(self, spec: ServiceSpec) -> None:
        self.spec = spec

    @abstractmethod
    def read(self, ids: Sequence[int], now: float | None = None) -> FeatureRead:
        """Features of ``ids`` (unique); raise ``OnlineStoreError`` when the store is down."""

    @abstractmethod
    def ping(self) -> str:
        """A short description of the store when it answers; raise ``OnlineStoreError``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    def _classify(
        self,
        out: FeatureRead,
        entity: int,
        values: list[FeatureValue],
        times: list[float | None],
        now: float,
    ) -> None:
        """Shared rule: unknown / stale / scorable (see the module docstring)."""
        oldest = None
        offset = 0
        for view, ts in zip(self.spec.views, times, strict=True):
            part = values[offset : offset + len(view.features)]
            offset += len(view.features)
            if ts is None or ts <= 0 or all(v is None for v in part):
                out.unknown.append(entity)
                return
            if view.ttl_seconds > 0 and ts < now - view.ttl_seconds:
                out.stale.append(entity)
                return
            oldest = ts if oldest is None else min(oldest, ts)
        out.rows[entity] = values
        out.times[entity] = float(oldest or 0.0)


class RedisFeatureReader(FeatureReader):
    """Direct read of Feast's Redis online store layout (see the module docstring)."""

    kind = "redis"

    def __init__(self, spec: ServiceSpec, client: redis.Redis) -> None:
        super().__init__(spec)
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from google.protobuf.timestamp_pb2 import Timestamp

        self._client = client
        self._serialize = serialize_entity_key
        self._entity_key = EntityKey
        self._value = Value
        self._timestamp = Timestamp
        self._project = spec.project.encode("utf-8")
        self._fields = [view.redis_fields for view in spec.views]
        #: entity id -> its Redis key (the key encoding costs more than the read itself)
        self._keys: dict[int, bytes] = {}

    def redis_key(self, entity: int) -> bytes:
        cached = self._keys.get(entity)
        if cached is not None:
            return cached
        key = self._entity_key(
            join_keys=[self.spec.join_key], entity_values=[self._value(int64_val=entity)]
        )
        encoded: bytes = (
            self._serialize(
                key, entity_key_serialization_version=self.spec.entity_key_serialization_version
            )
            + self._project
        )
        if len(self._keys) >= KEY_CACHE_SIZE:
            self._keys.clear()
        self._keys[entity] = encoded
        return encoded

    def read(self, ids: Sequence[int], now: float | None = None) -> FeatureRead:
        now = time.time() if now is None else now
        try:
            pipe: Any
            with self._client.pipeline(transaction=False) as pipe:
                for entity in ids:
                    key = self.redis_key(entity)
                    for fields in self._fields:
                        pipe.hmget(key, fields)
                replies = pipe.execute()
        except redis.RedisError as exc:
            raise OnlineStoreError(f"online store (redis) unavailable: {exc}") from exc
        out = FeatureRead()
        parse_value = self._value.FromString
        parse_ts = self._timestamp.FromString
        n_views = len(self._fields)
        for i, entity in enumerate(ids):
            values: list[FeatureValue] = []
            times: list[float | None] = []
            try:
                for reply in replies[i * n_views : (i + 1) * n_views]:
                    *raw_values, raw_ts = reply
                    values.extend(_value(parse_value(raw)) if raw else None for raw in raw_values)
                    if raw_ts:
                        stamp = parse_ts(raw_ts)
                        times.append(stamp.seconds + stamp.nanos / 1e9)
                    else:
                        times.append(None)
            except Exception:
                out.leave_out(entity)
                continue
            self._classify(out, entity, values, times, now)
        return out

    def ping(self) -> str:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise OnlineStoreError(f"online store (redis) unavailable: {exc}") from exc
        return "redis answers PING"

    def close(self) -> None:
        self._client.close()


class FeastFeatureReader(FeatureReader):
    """Feast's SDK: ``get_online_features`` with the feature service (any online store)."""

    kind = "feast"

    def __init__(self, spec: ServiceSpec, store: Any) -> None:
        super().__init__(spec)
        self._store = store
        self._service = store.get_feature_service(spec.name)
        self._view_of = {f: i for i, view in enumerate(spec.views) for f in view.features}

    def read(self, ids: Sequence[int], now: float | None = None) -> FeatureRead:
        now = time.time() if now is None else now
        try:
            response = self._store.get_online_features(
                features=self._service,
                entity_rows=[{self.spec.join_key: int(entity)} for entity in ids],
                full_feature_names=False,
            )
        except Exception as exc:
            raise OnlineStoreError(f"online store (feast) unavailable: {exc}") from exc
        proto = response.proto
        position = {name: i for i, name in enumerate(proto.metadata.feature_names.val)}
        names = self.spec.feature_names
        missing = [n for n in names if n not in position]
        if missing:
            raise OnlineStoreError(f"feast answered without features {missing}")
        vectors = [proto.results[position[n]] for n in names]
        first_of_view = [vectors[names.index(view.features[0])] for view in self.spec.views]
        out = FeatureRead()
        for row, entity in enumerate(ids):
            values = [_value(vector.values[row]) for vector in vectors]
            times: list[float | None] = []
            for vector in first_of_view:
                stamp = vector.event_timestamps[row]
                seconds = stamp.seconds + stamp.nanos / 1e9
                times.append(seconds if seconds > 0 else None)
            self._classify(out, entity, values, times, now)
        return out

    def ping(self) -> str:
        self.read([1])
        return f"feast online store ({self._store.config.online_store.type}) answers"


def redis_client_from_feast(store: Any, timeout: float) -> redis.Redis | None:
    """A redis-py client for the store's Redis online store, or None when the store is not a
    plain Redis (cluster, sentinel, versioned views: those read through the SDK)."""
    config = store.config
    online = config.online_store
    if getattr(online, "type", None) != "redis":
        return None
    if str(getattr(online, "redis_type", "redis")).split(".")[-1] != "redis":
        return None
    if getattr(config.registry, "enable_online_feature_view_versioning", False):
        return None
    return redis_client_from_connection_string(online.connection_string, timeout)


def redis_client_from_connection_string(text: str, timeout: float) -> redis.Redis:
    """Feast's Redis connection string (``host:port,db=0,password=…,ssl=true``) or a
    ``redis://`` URL, as a redis-py client with the given socket timeouts."""
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        # fail fast: redis-py's default retries with backoff for seconds, on the request path
        "retry": Retry(NoBackoff(), 0),
    }
    if "://" in text:
        return redis.Redis.from_url(text, **common)
    host, port = "localhost", 6379
    kwargs: dict[str, Any] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            key, value = part.split("=", 1)
            key, value = key.strip(), value.strip()
            if key == "db":
                kwargs["db"] = int(value)
            elif key == "ssl":
                kwargs["ssl"] = value.lower() in {"true", "1", "yes"}
            elif key in {"password", "username"}:
                kwargs[key] = value
        else:
            host_part, _, port_part = part.rpartition(":")
            host, port = (host_part or part), int(port_part) if host_part else 6379
    return redis.Redis(host=host, port=port, **kwargs, **common)


def make_reader(store: Any, service_name: str, kind: str, timeout: float) -> FeatureReader:
    """The reader for one feature service: ``redis`` (direct), ``feast`` (SDK) or ``auto``."""
    spec = service_spec(store, service_name)
    if kind in {"auto", "redis"}:
        client = redis_client_from_feast(store, timeout)
        if client is not None:
            return RedisFeatureReader(spec, client)
        if kind == "redis":
            raise FeatureServiceError(
                "SERVING_FEATURE_READER=redis but the online store is "
                f"{store.config.online_store.type!r}, not a plain Redis"
            )
    return FeastFeatureReader(spec, store)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)
