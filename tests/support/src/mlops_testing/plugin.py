"""The shared pytest fixtures of the components' tests (a ``pytest11`` plugin: every test run of
the workspace has them; a component's conftest may still define its own of the same name).

- ``redis_client``: a session client of the real Redis (``MLOPS_TEST_REDIS_URL``);
- ``mlflow_server``: a real MLflow tracking server per session, on a free loopback port;
- ``platform_stack``: a platform instance per test module (``mlops_testing.stack.Stack``).

``isolate_environment`` is the body of the components' env-isolation fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
import redis

from mlops_testing.stack import MlflowServer, Stack, running_stack, start_mlflow

#: Read when the plugin is loaded: before fixtures scrub MLOPS_* from the environment.
REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def isolate_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prefixes: Iterable[str]
) -> None:
    """Keep the developer's or CI's settings (variables starting with one of ``prefixes``,
    MLOPS_TEST_* excepted, and the .env file) out of a test."""
    starts = tuple(prefixes)
    for name in list(os.environ):
        if name.startswith(starts) and not name.startswith("MLOPS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def clear_environment(
    monkeypatch: pytest.MonkeyPatch, names: Iterable[str], cwd: Path | None = None
) -> None:
    """Unset each of ``names``; work in ``cwd`` (a test's own folder: no stray .env) if given."""
    for name in names:
        monkeypatch.delenv(name, raising=False)
    if cwd is not None:
        monkeypatch.chdir(cwd)


def use_env_file(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> Path:
    """Write ``text`` to the env file ``path`` and point MLOPS_ENV_FILE at it."""
    path.write_text(text)
    monkeypatch.setenv("MLOPS_ENV_FILE", str(path))
    return path


class _Cleanable(Protocol):
    def cleanup(self) -> None: ...


_C = TypeVar("_C", bound=_Cleanable)


def cleaned_up(made: _C) -> Iterator[_C]:
    """Yield ``made`` (keys, files of a test's own) then call its ``cleanup``: the body of a
    yield fixture, ``yield from cleaned_up(...)``."""
    try:
        yield made
    finally:
        made.cleanup()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "clear_environment(*names): unset these variables and work in the test's tmp_path",
    )


@pytest.fixture(autouse=True)
def _cleared_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pytest.mark.clear_environment(*names)`` on a test (or ``pytestmark``): no variable of
    ``names`` is set and the working folder is the test's own (no stray .env)."""
    marker = request.node.get_closest_marker("clear_environment")
    if marker is not None:
        clear_environment(monkeypatch, marker.args, cwd=request.getfixturevalue("tmp_path"))


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def platform_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A platform instance of the test module's own (free ports, its own data folder; the
    module's ``STACK_ENV`` mapping added to its env file), brought down at the end."""
    extra: dict[str, str] = getattr(request.module, "STACK_ENV", {})
    with running_stack(tmp_path_factory.mktemp("platform"), **extra) as instance:
        yield instance
