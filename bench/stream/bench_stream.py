"""Sustained throughput of the stream consumer, against a baseline measured in the same run.

    python bench/stream/bench_stream.py [--events 20000] [--batch-size 500]
        [--redis-url redis://127.0.0.1:6379/0]

Loads ``--events`` valid events (1,000 drivers) into a fresh stream, then measures

- baseline: the broker alone, ``XREADGROUP`` + ``XACK`` of every entry in batches;
- consumer: the full consumer (decode and validate, de-duplicate, Feast push to the Redis online
  store, atomic commit, offline buffer, final flush to parquet) on a throw-away Feast project
  with the platform's feature repository applied, in a temporary data directory.

Prints events/s of both and their ratio as JSON. Everything it creates (stream keys, the Feast
project's online keys, the data directory) is deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from mlops_testing.stream import delete_stream_keys, make_event


def _load(client: redis.Redis, stream: str, events: int) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    with client.pipeline(transaction=False) as pipe:
        for i in range(events):
            event = make_event(
                i,
                driver_id=1001 + i % 1000,
                at=start + timedelta(milliseconds=i),
                event_id=f"bench:{i}",
                conv_rate=round((i % 1000) / 1000, 4),
            )
            pipe.xadd(stream, event.encode())  # type: ignore[arg-type]
            if i % 1000 == 999:
                pipe.execute()
        pipe.execute()


def _baseline(client: redis.Redis, stream: str, batch: int) -> float:
    client.xgroup_create(stream, "bench-baseline", id="0")
    started = time.perf_counter()
    total = 0
    while True:
        answer: Any = client.xreadgroup("bench-baseline", "b", {stream: ">"}, count=batch)
        if not answer:
            break
        ids = [sid for sid, _ in answer[0][1]]
        client.xack(stream, "bench-baseline", *ids)
        total += len(ids)
    return total / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    from data_pipeline import feature_store as fs
    from data_pipeline.settings import DataPipelineSettings
    from data_pipeline.stream_consumer.consumer import StreamConsumer
    from data_pipeline.stream_consumer.settings import StreamConsumerSettings
    from data_pipeline.stream_consumer.sinks import feature_store_sinks

    parser = argparse.ArgumentParser(prog="bench/stream/bench_stream.py")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)

    stream = f"bench:stream:{uuid.uuid4().hex[:10]}"
    project = f"bench_stream_{uuid.uuid4().hex[:10]}"
    data_dir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    client = redis.Redis.from_url(args.redis_url)
    try:
        settings = DataPipelineSettings(
            mlops_data_dir=data_dir,
            mlops_database_url="",
            mlops_online_store_url=args.redis_url,
            mlops_redis_url="",
            mlops_feast_project=project,
        )
        fs.apply(settings)
        online, offline = feature_store_sinks(settings)
        _load(client, stream, args.events)
        baseline = _baseline(client, stream, args.batch_size)
        consumer_settings = StreamConsumerSettings.load(
            stream_redis_url=args.redis_url,
            stream=stream,
            consumer_name="bench",
            batch_size=args.batch_size,
            block_ms=50,
            offline_flush_rows=50_000,
        )
        consumer = StreamConsumer(consumer_settings, online, offline)
        consumer.ensure_group()
        online.write(  # warm-up: the first push reads the registry
            consumer_events_frame(make_event(0, driver_id=1001, event_id="bench:warmup"))
        )
        started = time.perf_counter()
        stats = consumer.run(idle_exit_s=0.3)
        elapsed = time.perf_counter() - started - 0.3
        rate = stats.applied / elapsed
        print(
            json.dumps(
                {
                    "events": args.events,
                    "batch_size": args.batch_size,
                    "applied": stats.applied,
                    "offline_rows": stats.offline_rows_flushed,
                    "baseline_xreadgroup_xack_per_s": round(baseline),
                    "consumer_events_per_s": round(rate),
                    "ratio_to_baseline": round(rate / baseline, 3),
                }
            )
        )
        return 0
    finally:
        delete_stream_keys(args.redis_url, stream)
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
        if keys:
            client.delete(*keys)
        client.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def consumer_events_frame(event: Any) -> Any:
    from data_pipeline.stream_consumer.consumer import events_frame

    return events_frame([event])


if __name__ == "__main__":
    raise SystemExit(main())
