"""Serving benchmark: this service vs `mlflow models serve` vs the in-process floor, one run.

    python bench/serving/bench_serving.py [--duration 10] [--rate 100] [--concurrency 16]

In one run, on the same machine, model and data:

(a) ``model-serving serve`` (one uvicorn worker): ``POST /v1/predict`` with 5 candidates, features
    read from the Feast online store on Redis, the prediction event written to a Redis stream;
(b) ``mlflow models serve`` of the same registered model (one worker), with the same 5 feature
    rows posted directly to ``/invocations`` (less work: no feature read, no events);
(c) the in-process floor: the same feature read and model call, no HTTP.

Every server process runs with ``OMP_NUM_THREADS=1``. Printed: throughput at concurrency 16
(closed loop, ``hey`` when installed, else a Python client), p50/p99 latency at a fixed rate of
100 requests/s (open loop: requests are sent on a fixed schedule and latency is measured from the
scheduled time, so a stall is not hidden), and the ratios. Targets (issue 5): (a) >= 3x the
throughput of (b), and (a)'s p99 at 100 requests/s <= 10 ms.

It needs what the test suite needs: Redis (``MLOPS_TEST_REDIS_URL``, default
redis://127.0.0.1:6379/0; keys of its own Feast project and streams, deleted at the end) and the
platform's Python environment. It starts its own MLflow server on a free port and stops every
process it starts. Not a test: numbers swing about 25% run to run on these machines; compare
within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mlops_testing.frames import stats_frame
from mlops_testing.models import log_and_register
from mlops_testing.processes import ProcessGroup
from mlops_testing.redis_server import free_port
from mlops_testing.stack import start_mlflow

REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
API_KEY = "bench-" + uuid.uuid4().hex
MODEL = "bench_driver_ranking"
CANDIDATES = [11, 22, 33, 44, 55]
VENV_BIN = Path(sys.executable).parent
SINGLE_THREAD: dict[str, str | None] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc(ProcessGroup):
    """A benchmarked process (``stop``: its group, by its pid) and its log file."""

    name: str
    logfile: Path


def start(name: str, command: list[str], env: dict[str, str | None], folder: Path) -> Proc:
    """Start a process in its own group; ``env`` values of None remove the variable."""
    logfile = folder / f"{name}.log"
    # the environment's console scripts first: `mlflow models serve` execs `uvicorn`
    merged: dict[str, str | None] = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **env,
    }
    with logfile.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={k: v for k, v in merged.items() if v is not None},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends its children too
        )
    return Proc(process, name=name, logfile=logfile)


def wait_http(proc: Proc, url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited:\n{proc.logfile.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{proc.name} not ready at {url}:\n{proc.logfile.read_text()[-3000:]}")


# --- the shared setup: feature store, registered model ------------------------------------------


def setup_store(data_dir: Path, project: str) -> Any:
    from data_pipeline.feature_store import FEATURE_VIEW, apply, feature_store
    from data_pipeline.settings import DataPipelineSettings

    settings = DataPipelineSettings(
        mlops_data_dir=data_dir,
        mlops_online_store_url=REDIS_URL,
        mlops_feast_project=project,
        mlops_database_url="",
    )
    apply(settings)
    store = feature_store(settings)
    store.write_to_online_store(
        FEATURE_VIEW, stats_frame(range(1, 1001), datetime.now(UTC), seed=7)
    )
    return store


def register(tracking_uri: str, kind: str) -> str:
    from mlflow.tracking import MlflowClient
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from data_pipeline.feature_store import FEATURE_NAMES, FEATURE_SERVICE

    frame = stats_frame(range(20_000), datetime.now(UTC), seed=1)[list(FEATURE_NAMES)]
    logit = 3 * frame["conv_rate"] + frame["rating"] - 3 - 4 * frame["cancel_rate"]
    label = np.random.default_rng(2).uniform(0, 1, len(frame)) < 1 / (1 + np.exp(-logit))
    from training_pipeline.settings import EstimatorConfig

    # the training pipeline's default estimator (HistGradientBoosting, 200 trees of 7 leaves)
    defaults = EstimatorConfig()
    model: Any = (
        HistGradientBoostingClassifier(random_state=0, **defaults.hyperparameters)
        if kind == "hgb"
        else make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    )
    model.fit(frame, label)
    tags = {"features.service": FEATURE_SERVICE}
    version = log_and_register(model, frame, tracking_uri, "bench", MODEL, **tags)
    MlflowClient(tracking_uri, tracking_uri).set_registered_model_alias(MODEL, "champion", version)
    return version


# --- load generation ------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Throughput:
    rps: float
    ok: int
    errors: int
    tool: str


def hey_throughput(target: Target, concurrency: int, seconds: float) -> Throughput:
    command = [
        "hey",
        "-z",
        f"{seconds}s",
        "-c",
        str(concurrency),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-d",
        target.body.decode(),
    ]
    for key, value in target.headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run(
        [*command, target.url], capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    rps = float(next(line.split()[-1] for line in out.splitlines() if "Requests/sec" in line))
    codes: dict[int, int] = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("[") and "responses" in line:
            code, count = line.split()[0].strip("[]"), line.split()[1]
            codes[int(code)] = int(count)
    ok = codes.get(200, 0)
    return Throughput(rps, ok, sum(codes.values()) - ok, "hey")


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return int(status_line.split()[1])


def raw_request(target: Target) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    parts = urlsplit(target.url)
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Content-Type: application/json",
        f"Content-Length: {len(target.body)}",
    ]
    head += [f"{k}: {v}" for k, v in target.headers.items()]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + target.body
    return parts.hostname or "127.0.0.1", parts.port or 80, raw


async def _closed_loop(target: Target, concurrency: int, seconds: float) -> Throughput:
    host, port, raw = raw_request(target)
    deadline = time.perf_counter() + seconds
    counts = {"ok": 0, "errors": 0}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < deadline:
            status = await _request(reader, writer, raw)
            counts["ok" if status == 200 else "errors"] += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    total = counts["ok"] + counts["errors"]
    return Throughput(
        total / (time.perf_counter() - began), counts["ok"], counts["errors"], "python"
    )


def throughput(target: Target, concurrency: int, seconds: float) -> Throughput:
    if shutil.which("hey"):
        return hey_throughput(target, concurrency, seconds)
    return asyncio.run(_closed_loop(target, concurrency, seconds))


async def _open_loop(target: Target, rate: float, seconds: float) -> tuple[list[float], int]:
    """Send at a fixed rate; latency from the scheduled time (no coordinated omission)."""
    host, port, raw = raw_request(target)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    errors = 0
    interval = 1.0 / rate
    n = int(rate * seconds)
    start_at = time.perf_counter() + 0.1

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await pool.get()
        status = await _request(*conn, raw)
        latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            errors += 1
        pool.put_nowait(conn)

    tasks = []
    for i in range(n):
        scheduled = start_at + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return latencies, errors


def fixed_rate(target: Target, rate: float, seconds: float) -> dict[str, float]:
    latencies, errors = asyncio.run(_open_loop(target, rate, seconds))
    ms = sorted(x * 1000 for x in latencies)
    return {
        "requests": len(ms),
        "errors": errors,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1],
    }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --- (c) the in-process floor ---------------------------------------------------------------


def floor(
    store: Any, tracking_uri: str, version: str, folder: Path, seconds: float, *, compiled: bool
) -> dict[str, float]:
    from threadpoolctl import threadpool_limits

    from mlops_common.registry import make_client
    from model_serving.features import make_reader
    from model_serving.models import fetch_version, load_version
    from model_serving.shadow import feature_matrix

    threadpool_limits(1)
    path = fetch_version(make_client(tracking_uri), tracking_uri, folder / "cache", MODEL, version)
    model = load_version(
        path,
        alias="champion",
        source="registry",
        default_feature_service="driver_ranking_v1",
        compiled=compiled,
    )
    reader = make_reader(store, model.feature_service, "auto", 1.0)
    names = reader.spec.feature_names
    positions = tuple(names.index(c) for c in model.columns)

    def call() -> None:
        read = reader.read(CANDIDATES)
        model.score(feature_matrix([read.rows[i] for i in CANDIDATES], positions))

    for _ in range(200):
        call()
    timings = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        call()
        timings.append(time.perf_counter() - began)
    ms = sorted(t * 1000 for t in timings)
    return {
        "calls_per_s": len(timings) / sum(timings),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "reader": reader.kind,  # type: ignore[dict-item]
        "scorer": model.scorer_kind,  # type: ignore[dict-item]
    }


# --- the run ----------------------------------------------------------------------------------


class Stoppable(Protocol):
    def stop(self) -> None: ...


@contextmanager
def processes() -> Iterator[list[Stoppable]]:
    started: list[Stoppable] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()


def drop_keys(project: str, streams: list[str]) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"*{project}", count=1000))
    for start_at in range(0, len(keys), 500):
        client.delete(*keys[start_at : start_at + 500])
    if streams:
        client.delete(*streams)
    client.close()


@dataclass
class Variant:
    key: str
    label: str
    kind: str  # serving | mlflow
    env: dict[str, str | None]


VARIANTS = [
    Variant("a", "(a) model-serving /v1/predict", "serving", SINGLE_THREAD),
    Variant(
        "a_sklearn",
        "(a') same, scikit-learn scorer",
        "serving",
        {**SINGLE_THREAD, "SERVING_COMPILED_MODELS": "false"},
    ),
    Variant("b", "(b) mlflow models serve", "mlflow", SINGLE_THREAD),
    Variant("b_default_threads", "(b') same, default OpenMP threads", "mlflow", {}),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rate", type=float, default=100.0, help="fixed request rate")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--model", choices=["hgb", "logreg"], default="hgb")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    folder = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    project = f"bench_{uuid.uuid4().hex[:10]}"
    streams = [f"{project}:predictions", f"{project}:feedback"]
    log(f"working folder {folder}; Feast project {project} on {REDIS_URL}")
    results: dict[str, Any] = {
        "model": args.model,
        "candidates": len(CANDIDATES),
        "load_tool": "hey" if shutil.which("hey") else "python",
    }
    try:
        with processes() as started:
            mlflow = start_mlflow(folder / "mlflow")
            started.append(mlflow)
            tracking = mlflow.url
            world = World(folder, project, streams, tracking, setup_store(folder / "data", project))
            world.version = register(tracking, args.model)
            log(f"registered {MODEL} v{world.version} ({args.model})")
            for variant in VARIANTS:
                results[variant.key] = run_variant(world, variant, args, started)
            log("in-process floor")
            for key, compiled in (("c", True), ("c_sklearn", False)):
                results[key] = floor(
                    world.store, tracking, world.version, folder, args.duration, compiled=compiled
                )
    finally:
        drop_keys(project, streams)
        shutil.rmtree(folder, ignore_errors=True)
    targets_met = add_ratios(results)
    print(report(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if args.check and not all(targets_met.values()) else 0


@dataclass
class World:
    """What every variant of one run shares: the folder, the Feast project on Redis, the event
    streams, the MLflow server and the registered version."""

    folder: Path
    project: str
    streams: list[str]
    tracking: str
    store: Any
    version: str = ""

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def feature_rows(self) -> list[list[Any]]:
        """The candidates' online feature rows (what (b) is posted)."""
        from data_pipeline.feature_store import FEATURE_NAMES

        online = self.store.get_online_features(
            features=self.store.get_feature_service("driver_ranking_v1"),
            entity_rows=[{"driver_id": i} for i in CANDIDATES],
        ).to_dict()
        return [[online[f][k] for f in FEATURE_NAMES] for k in range(len(CANDIDATES))]


def run_variant(
    world: World, variant: Variant, args: argparse.Namespace, started: list[Stoppable]
) -> dict[str, Any]:
    """Start the variant's server, measure it, stop it."""
    port = free_port()
    if variant.kind == "serving":
        proc, ready, target = start_serving(world, variant, port)
    else:
        proc, ready, target = start_mlflow_serve(world, variant, port)
    started.append(proc)
    try:
        wait_http(proc, ready)
        return measure(target, args)
    finally:
        proc.stop()


def start_serving(world: World, variant: Variant, port: int) -> tuple[Proc, str, Target]:
    """(a): ``model-serving serve``."""
    env: dict[str, str | None] = {
        **variant.env,
        "MLOPS_ENV_FILE": str(world.folder / "no.env"),
        "MLOPS_DATA_DIR": str(world.data_dir),
        "MLOPS_ONLINE_STORE_URL": REDIS_URL,
        "MLOPS_FEAST_PROJECT": world.project,
        "MLOPS_DATABASE_URL": "",
        "MLFLOW_TRACKING_URI": world.tracking,
        "MLOPS_BIND_HOST": "127.0.0.1",
        "SERVING_PORT": str(port),
        "SERVING_API_KEY": API_KEY,
        "SERVING_MODEL_NAME": MODEL,
        "SERVING_EVENTS_REDIS_URL": REDIS_URL,
        "SERVING_EVENTS_PREDICTION_STREAM": world.streams[0],
        "SERVING_EVENTS_FEEDBACK_STREAM": world.streams[1],
    }
    proc = start(variant.key, [str(VENV_BIN / "model-serving"), "serve"], env, world.folder)
    target = Target(
        variant.label,
        f"http://127.0.0.1:{port}/v1/predict",
        json.dumps({"driver_ids": CANDIDATES}).encode(),
        {"X-API-Key": API_KEY},
    )
    return proc, f"http://127.0.0.1:{port}/health/ready", target


def start_mlflow_serve(world: World, variant: Variant, port: int) -> tuple[Proc, str, Target]:
    """(b): ``mlflow models serve`` of the same version, posted the feature rows directly."""
    from data_pipeline.feature_store import FEATURE_NAMES

    env = dict(variant.env)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, None)  # unset: the libraries' default
    command = [
        str(VENV_BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{MODEL}/{world.version}",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
        "--workers",
        "1",
    ]
    proc = start(variant.key, command, {**env, "MLFLOW_TRACKING_URI": world.tracking}, world.folder)
    body = {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": world.feature_rows()}}
    target = Target(
        variant.label, f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(), {}
    )
    return proc, f"http://127.0.0.1:{port}/health", target


def add_ratios(results: dict[str, Any]) -> dict[str, bool]:
    """The ratios against the baselines of the same run, and which targets are met."""
    a, b, c = results["a"], results["b"], results["c"]
    results["ratio_a_over_b_rps"] = a["rps"] / b["rps"]
    results["ratio_a_over_b_default_threads_rps"] = a["rps"] / results["b_default_threads"]["rps"]
    results["ratio_a_over_floor_rps"] = a["rps"] / c["calls_per_s"]
    targets_met = {
        "a >= 3x b throughput": results["ratio_a_over_b_rps"] >= 3.0,
        "a p99 at fixed rate <= 10 ms": a["p99_ms"] <= 10.0,
    }
    results["targets"] = targets_met
    return targets_met


def measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    check = urllib.request.Request(
        target.url, data=target.body, headers={**target.headers, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(check, timeout=10) as response:
        assert response.status == 200, target.name
    log(f"{target.name}: warm-up")
    throughput(target, args.concurrency, 2)
    log(f"{target.name}: throughput at concurrency {args.concurrency}")
    tp = throughput(target, args.concurrency, args.duration)
    log(f"{target.name}: latency at {args.rate:g} requests/s")
    lat = fixed_rate(target, args.rate, args.duration)
    return {
        "label": target.name,
        "rps": tp.rps,
        "ok": tp.ok,
        "errors": tp.errors + int(lat["errors"]),
        **lat,
    }


def report(r: dict[str, Any], args: argparse.Namespace) -> str:
    head = (
        f"{'':38} {'RPS @c' + str(args.concurrency):>10} {'p50 @' + f'{args.rate:g}/s':>12} "
        f"{'p99 @' + f'{args.rate:g}/s':>12} {'errors':>7}"
    )
    lines = [
        f"serving benchmark: {r['model']} model (the training pipeline's default estimator), "
        f"{r['candidates']} candidates, one worker per server; load tool {r['load_tool']}",
        "",
        head,
    ]
    for variant in VARIANTS:
        v = r[variant.key]
        lines.append(
            f"{variant.label:38} {v['rps']:10.0f} {v['p50_ms']:10.2f}ms "
            f"{v['p99_ms']:10.2f}ms {v['errors']:7d}"
        )
    for key, label in (
        ("c", "(c) in-process floor (no HTTP)"),
        ("c_sklearn", "(c') same, scikit-learn scorer"),
    ):
        v = r[key]
        lines.append(
            f"{label:38} {v['calls_per_s']:10.0f} {v['p50_ms']:10.2f}ms "
            f"{v['p99_ms']:10.2f}ms {'':>7}"
        )
    a = r["a"]
    lines += [
        "",
        f"(a)/(b)  throughput: {r['ratio_a_over_b_rps']:.2f}x  (target >= 3x; both one worker, "
        "OMP_NUM_THREADS=1)",
        f"(a)/(b') throughput: {r['ratio_a_over_b_default_threads_rps']:.2f}x  (mlflow's "
        "out-of-the-box threads)",
        f"(a)/(c)  throughput: {r['ratio_a_over_floor_rps']:.2f} of the in-process floor",
        f"(a) p99 at {args.rate:g}/s: {a['p99_ms']:.2f} ms  (target <= 10 ms)",
        "targets: "
        + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in r["targets"].items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
