"""The driver stats stream: the event producer and the consumer that feeds Feast.

Two programs, both from the platform's Python environment:

- ``stream-producer``: ``stream-emitting produce`` writes DriverStatsEvent v1 to the Redis stream
  (rate, scenario and drivers from ``MLOPS_STREAM_*`` in .env; see stream_emitting.settings);
- ``stream-consumer``: ``data-pipeline stream-consume`` reads it with a consumer group and pushes
  valid events to the Feast online store and, batched, to the offline store.

The broker is the platform's Redis (the feast service): ``MLOPS_STREAM_REDIS_URL``, else
``MLOPS_REDIS_URL``, else the platform's own redis-server. Without any Redis (the embedded SQLite
online store) there is no broker: the service then runs nothing and says so (``all up`` still
works on a machine with nothing but Python).

Healthy when the producer's and the consumer's /metrics answer and the consumer group exists in
the broker. The platform layer does not import the components: the stream and group names below
are the components' defaults, overridable with the same variables.
"""

from __future__ import annotations

from typing import Any

import redis
from pydantic import Field

from mlops_common.redis import redact
from mlops_platform.launcher.health import Health, Probe, http_probe
from mlops_platform.launcher.online_store import online_store_kind
from mlops_platform.launcher.services.base import Check, Context, Program, Service
from mlops_platform.launcher.settings import LauncherEnvSettings

DEFAULT_STREAM = "mlops:driver_stats"
DEFAULT_GROUP = "data-pipeline"
NO_BROKER = "no Redis for the stream broker (the online store is the embedded SQLite one)"


class StreamSettings(LauncherEnvSettings):
    """The stream service's own entries of the env file (environment first)."""

    stream_producer_metrics_port: int = Field(default=8311, ge=1, le=65535)
    stream_consumer_metrics_port: int = Field(default=8312, ge=1, le=65535)
    mlops_stream_redis_url: str = ""
    mlops_stream_name: str = DEFAULT_STREAM
    mlops_stream_group: str = DEFAULT_GROUP


def broker_url(ctx: Context, stream: StreamSettings) -> str:
    return ctx.settings.redis_url(stream.mlops_stream_redis_url, own_server=True)


def consumer_group_probe(url: str, stream: str, group: str, timeout: float = 2.0) -> Probe:
    """Healthy when the consumer group exists on the stream (the consumer created it)."""

    def probe() -> Health:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            groups: Any = client.xinfo_groups(stream)
        except redis.ResponseError:
            return Health(False, f"stream {stream} does not exist yet")
        except redis.RedisError as exc:
            return Health(False, f"broker unreachable: {exc}")
        finally:
            client.close()
        for info in groups:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            if name == group:
                return Health(
                    True,
                    f"group {group} on {stream}: {info.get('pending', 0)} pending, "
                    f"lag {info.get('lag')}",
                )
        return Health(False, f"no consumer group {group} on {stream} yet")

    return probe


class StreamService(Service):
    name = "stream"
    description = "driver stats stream: event producer and the consumer feeding Feast"
    depends_on = ("feast",)
    start_timeout = 90.0

    @staticmethod
    def has_broker(ctx: Context, stream: StreamSettings) -> bool:
        """False with the embedded SQLite online store and no Redis configured (the docker
        runtime always has one: the feast profile's)."""
        return (
            bool(stream.mlops_stream_redis_url)
            or ctx.settings.mlops_runtime == "docker"
            or online_store_kind(ctx.settings) != "sqlite"
        )

    def prepare(self, ctx: Context) -> None:
        ctx.state_dir(self.name)
        if not self.has_broker(ctx, StreamSettings.load(ctx)):
            print(
                f"  {NO_BROKER}: the stream is disabled; install redis-server (the feast "
                "service then runs one) or set MLOPS_REDIS_URL",
                flush=True,
            )

    def programs(self, ctx: Context) -> list[Program]:
        stream = StreamSettings.load(ctx)
        if not self.has_broker(ctx, stream):
            return []
        env = {
            "MLOPS_STREAM_PRODUCER_METRICS_PORT": str(stream.stream_producer_metrics_port),
            "MLOPS_STREAM_CONSUMER_METRICS_PORT": str(stream.stream_consumer_metrics_port),
            "MLOPS_STREAM_NAME": stream.mlops_stream_name,
            "MLOPS_STREAM_GROUP": stream.mlops_stream_group,
            # Feast imports gunicorn, which imports setproctitle: without this it blanks the
            # process's environment block, and with it the MLOPS_INSTANCE tag of the process
            "SPT_NOENV": "1",
        }
        return [
            Program("stream-producer", [ctx.venv_bin("stream-emitting"), "produce"], env),
            Program(
                "stream-consumer",
                [ctx.venv_bin("data-pipeline"), "stream-consume"],
                env,
                stop_wait_seconds=30,
            ),
        ]

    def checks(self, ctx: Context) -> list[Check]:
        s, stream = ctx.settings, StreamSettings.load(ctx)
        if not self.has_broker(ctx, stream):
            return [Check("stream", lambda: Health(True, f"disabled: {NO_BROKER}"))]
        producer = s.url(stream.stream_producer_metrics_port)
        consumer = s.url(stream.stream_consumer_metrics_port)
        return [
            Check(
                "stream-producer",
                http_probe(f"{producer}/metrics", expect_text="stream_producer_events"),
            ),
            Check(
                "stream-consumer",
                http_probe(f"{consumer}/metrics", expect_text="stream_consumer_entries_consumed"),
            ),
            Check(
                "stream-group",
                consumer_group_probe(
                    broker_url(ctx, stream), stream.mlops_stream_name, stream.mlops_stream_group
                ),
            ),
        ]

    def scrape_targets(self, ctx: Context) -> dict[str, list[str]]:
        s, stream = ctx.settings, StreamSettings.load(ctx)
        if not self.has_broker(ctx, stream):
            return {}
        host = s.mlops_bind_host
        return {
            "stream": [
                f"{host}:{stream.stream_producer_metrics_port}",
                f"{host}:{stream.stream_consumer_metrics_port}",
            ]
        }

    def endpoints(self, ctx: Context) -> list[str]:
        s, stream = ctx.settings, StreamSettings.load(ctx)
        if not self.has_broker(ctx, stream):
            return [f"Stream              disabled ({NO_BROKER})"]
        return [
            f"Stream producer     {s.url(stream.stream_producer_metrics_port)}/metrics",
            f"Stream consumer     {s.url(stream.stream_consumer_metrics_port)}/metrics  "
            f"(stream {stream.mlops_stream_name} on {redact(broker_url(ctx, stream))}, "
            f"dead letters in {stream.mlops_stream_name}:dead)",
        ]
