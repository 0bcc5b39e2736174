"""No secret where other users of the machine can read it (issue 15, item 6).

The local runtime comes up with a PostgreSQL metadata store whose URL carries a password (the
machine's server trusts loopback, so any password works). Then every secret value of the
instance's `.env` (and that password) is looked for in every process's argv and in every file
of the data folder that group or other may read: none may be found.
"""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy.engine import make_url

from mlops_testing.stack import Stack, drop_databases, postgres_server_url

pytestmark = pytest.mark.integration

SECRET_SUFFIXES = ("PASSWORD", "SECRET", "KEY", "TOKEN")
DB_PASSWORD = f"pw-{uuid.uuid4().hex}"


def _server_with_password() -> str:
    return make_url(postgres_server_url()).set(password=DB_PASSWORD).render_as_string(False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"mlops_secrets_{uuid.uuid4().hex[:8]}"
    stack = Stack(
        tmp_path_factory.mktemp("secrets-platform"),
        extra_env={"MLOPS_DATABASE_URL": _server_with_password(), "MLOPS_DATABASE_PREFIX": prefix},
    )
    try:
        result = stack.run("mlflow", "up")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        yield stack
    finally:
        stack.down()
        drop_databases([f"{prefix}_mlflow"])


def secret_values(env_file: Path) -> dict[str, str]:
    """Name -> value of every secret in `env_file` (non-empty values of *_PASSWORD, *_KEY…)."""
    found = {"MLOPS_DATABASE_URL password": DB_PASSWORD}
    for line in env_file.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip().upper().endswith(SECRET_SUFFIXES) and len(value.strip()) >= 8:
            found[name.strip()] = value.strip()
    return found


def argv_leaks(secrets: dict[str, str]) -> list[str]:
    leaks = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        argv = " ".join(process.info["cmdline"] or [])
        leaks += [
            f"{name} in argv of pid {process.pid}" for name, v in secrets.items() if v in argv
        ]
    return leaks


def file_leaks(root: Path, secrets: dict[str, str]) -> list[str]:
    leaks = []
    for path in root.rglob("*"):
        try:
            mode = path.lstat().st_mode
            if not stat.S_ISREG(mode) or not mode & (stat.S_IRGRP | stat.S_IROTH):
                continue
            text = path.read_bytes().decode(errors="replace")
        except OSError:
            continue
        leaks += [
            f"{name} in {oct(mode & 0o777)} {path}" for name, v in secrets.items() if v in text
        ]
    return leaks


def test_the_env_file_has_secrets_to_look_for(stack: Stack) -> None:
    assert len(secret_values(stack.env_file)) >= 5


def test_no_secret_in_any_process_argv(stack: Stack) -> None:
    assert argv_leaks(secret_values(stack.env_file)) == []


def test_no_secret_in_a_group_or_other_readable_file(stack: Stack) -> None:
    assert file_leaks(stack.data_dir, secret_values(stack.env_file)) == []


def test_supervisor_config_and_env_files_are_private(stack: Stack) -> None:
    root = stack.data_dir / "supervisor"
    files = [*root.rglob("*.conf"), *root.rglob("*.json")]
    assert files
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
