"""The fault suite's platform: the local runtime on its own Redis and PostgreSQL, bootstrapped
with the example project's first champion, under a steady prediction load (`make faults`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faults_harness import ROWS, Load, PrivatePostgres, render_table

from mlops_platform.launcher.envfile import ensure_env_file
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_testing.redis_server import PrivateRedis
from mlops_testing.stack import Stack, eventually, http_status

RATE = 20.0  # predictions a second, each with its feedback
OVERRIDES = {
    "MLOPS_BOOTSTRAP": "auto",
    "MLOPS_DISPATCH_RATE": "2",  # the example traffic stays on, slow: the suite's load counts
}


@pytest.fixture(scope="session")
def backends(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrivateRedis, PrivatePostgres]]:
    root = tmp_path_factory.mktemp("fault-backends")
    store, pg = PrivateRedis(root / "redis"), PrivatePostgres()
    try:
        store.start()
        pg.start()
        yield store, pg
    finally:
        store.stop()
        pg.stop()


@pytest.fixture(scope="session")
def platform(
    tmp_path_factory: pytest.TempPathFactory, backends: tuple[PrivateRedis, PrivatePostgres]
) -> Iterator[Stack]:
    store, pg = backends
    env = {
        **OVERRIDES,
        "MLOPS_REDIS_URL": store.url,
        "MLOPS_DATABASE_URL": pg.url,
        "MLOPS_DATABASE_PREFIX": "faults",
    }
    stack = Stack(tmp_path_factory.mktemp("fault-platform"), extra_env=env)
    ensure_env_file(REPO_ROOT / ".env.example", stack.env_file)
    try:
        # a loaded machine can take the stream consumer past its 90 s start timeout (Feast's
        # first apply): a second `up` picks up where the first stopped
        result = stack.run("all", "up", timeout=2400)
        if result.returncode != 0:
            print(f"first `all up` failed, once more:\n{result.stdout[-2000:]}", flush=True)
            result = stack.run("all", "up", timeout=2400)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
        ready = f"{stack.url('SERVING_PORT')}/health/ready"
        assert eventually(lambda: http_status(ready) == 200, timeout=300, interval=2)
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def load(platform: Stack) -> Iterator[Load]:
    steady = Load(platform.url("SERVING_PORT"), platform.env_value("SERVING_API_KEY"), RATE)
    steady.start()
    try:
        yield steady
    finally:
        steady.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    terminalreporter.write_sep("=", "faults")
    terminalreporter.write_line(render_table(ROWS))
