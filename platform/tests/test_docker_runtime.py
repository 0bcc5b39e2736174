"""The docker runtime against a fake `docker compose` (and `docker`) executable: the commands it
runs per profile, idempotent up, down with and without volumes, the image sizes, and errors that
name the service with its last log lines. The real engine runs in tests/compose
(`make compose-e2e`)."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest

from mlops_platform.launcher.envfile import ensure_env_file
from mlops_platform.launcher.health import Health
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.runtimes import docker as docker_runtime
from mlops_platform.launcher.runtimes.docker import DockerRuntime
from mlops_platform.launcher.runtimes.local import PlatformError
from mlops_platform.launcher.services import Check, Context, resolve
from mlops_platform.launcher.settings import LauncherSettings

# Records its arguments (one JSON line per call); `config --services|--images|--format json`,
# `ps`, `logs` and `version` answer like compose; FAKE_FAIL=<subcommand> makes that subcommand
# exit 3 (a failing build prints 40 numbered lines first); FAKE_ENGINE_DOWN makes `docker info`
# fail like a docker CLI with no daemon behind its socket.
FAKE = """#!PYTHON
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *args]) + "\\n")
if os.path.basename(sys.argv[0]) == "docker":
    if args[:1] == ["info"] and os.environ.get("FAKE_ENGINE_DOWN"):
        print("Cannot connect to the Docker daemon at unix:///fake.sock. Is the docker daemon "
              "running?", file=sys.stderr)
        sys.exit(1)
    print(123456789 if "inspect" in args else "")
    sys.exit(0)
if "version" in args:
    print(os.environ.get("FAKE_COMPOSE_VERSION", "2.40.3"))
    sys.exit(0)
if os.environ.get("FAKE_FAIL") and os.environ["FAKE_FAIL"] in args:
    if "build" in args:
        for step in range(1, 41):
            print(f"#{step} build step {step}", flush=True)
    print("boom: the build failed", file=sys.stderr)
    sys.exit(3)
if "config" in args and "--format" in args:
    port = os.environ.get("FAKE_PORT")
    ports = [{"host_ip": "127.0.0.1", "published": port, "target": 6379}] if port else []
    print(json.dumps({"services": {"redis": {"ports": ports}, "serving": {"build": {}}}}))
elif "ps" in args:
    print(os.environ.get("FAKE_RUNNING", ""))
elif "config" in args and "--images" in args:
    print("mlops/serving:0.1.0\\nmlops/serving:0.1.0\\nredis:7.4")
elif "config" in args:
    print("redis\\nserving")
elif "logs" in args:
    print("serving-1  | Traceback: no champion\\nserving-1  | the last line")
"""


def fake_bin(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("docker-compose", "docker"):
        script = folder / name
        script.write_text(FAKE.replace("PYTHON", sys.executable, 1))
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DockerRuntime:
    env_file = tmp_path / ".env"
    ensure_env_file(REPO_ROOT / ".env.example", env_file)
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    settings = LauncherSettings.load(env_file)
    folder = fake_bin(tmp_path)
    env = {
        "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.jsonl"),
    }
    runtime = DockerRuntime(
        Context(settings=settings, env_file=env_file), [str(folder / "docker-compose")], env
    )
    # health waits are the launcher's (tested with the local runtime): answer at once here
    monkeypatch.setattr(docker_runtime, "wait_healthy", lambda *a, **k: Health(True, "ok"))
    return runtime


def calls(runtime: DockerRuntime) -> list[list[str]]:
    log = Path(runtime.env["FAKE_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line) for line in lines]


def ups(runtime: DockerRuntime) -> list[list[str]]:
    """The `compose up` calls (up first asks compose for the config and what runs)."""
    return [c for c in calls(runtime) if compose_args(c)[:1] == ["up"]]


def compose_args(call: list[str]) -> list[str]:
    """The arguments after the common part (project directory, file, env file, profiles)."""
    args = call[1:]
    while args and args[0] in ("--project-directory", "-f", "--env-file", "--profile"):
        args = args[2:]
    return args


def test_up_runs_compose_up_with_the_profiles_env_file_and_repo(runtime: DockerRuntime) -> None:
    runtime.up(resolve("serving"), build=False)
    [call] = ups(runtime)
    assert call[0] == "docker-compose"
    assert call[call.index("--project-directory") + 1] == str(REPO_ROOT)
    assert call[call.index("-f") + 1] == str(REPO_ROOT / "docker-compose.yml")
    assert call[call.index("--env-file") + 1] == str(runtime.ctx.env_file)
    assert call[call.index("--profile") + 1] == "serving"
    assert compose_args(call) == ["up", "-d"]


def test_up_twice_runs_the_same_command(runtime: DockerRuntime) -> None:
    """compose up -d is idempotent: the second up recreates nothing that did not change."""
    runtime.up(resolve("feast"), build=False)
    runtime.up(resolve("feast"), build=False)
    first, second = ups(runtime)
    assert first == second


def test_up_with_build_builds_each_image_first(runtime: DockerRuntime) -> None:
    runtime.up(resolve("mlflow"), build=True)
    steps = [compose_args(c) for c in calls(runtime)]
    assert ["build", "serving"] in steps  # the fake's one service with a build section
    assert steps.index(["build", "serving"]) < steps.index(["up", "-d"])


def test_a_failed_build_names_the_service_with_its_last_lines_and_starts_nothing(
    runtime: DockerRuntime,
) -> None:
    runtime.env["FAKE_FAIL"] = "build"
    with pytest.raises(PlatformError) as error:
        runtime.up(resolve("serving"), build=True)
    message = str(error.value)
    assert message.startswith("image build failed for serving (exit code 3), nothing started")
    assert message.endswith("boom: the build failed")
    lines = message.splitlines()[1:]
    assert len(lines) == 30
    assert lines[0] == "#12 build step 12"
    assert not ups(runtime)


def test_build_alone_names_the_failed_service(runtime: DockerRuntime) -> None:
    runtime.env["FAKE_FAIL"] = "build"
    with pytest.raises(PlatformError, match="image build failed for serving"):
        runtime.build(resolve("serving"))


def test_all_passes_every_profile(runtime: DockerRuntime) -> None:
    runtime.up(resolve("all"), build=False)
    [call] = ups(runtime)
    profiles = [call[i + 1] for i, word in enumerate(call) if word == "--profile"]
    assert profiles == [s.name for s in resolve("all")]


@pytest.mark.parametrize(("volumes", "expected"), [(False, []), (True, ["--volumes"])])
def test_down_keeps_volumes_unless_asked(
    runtime: DockerRuntime, volumes: bool, expected: list[str]
) -> None:
    runtime.down(resolve("all"), volumes=volumes, everything=True)
    [call] = calls(runtime)
    assert compose_args(call) == ["down", "--remove-orphans", *expected]


def test_a_failed_up_is_an_error_and_removes_what_it_started(runtime: DockerRuntime) -> None:
    runtime.env["FAKE_FAIL"] = "up"
    with pytest.raises(PlatformError, match="compose up failed with exit code 3"):
        runtime.up(resolve("serving"), build=False)
    # nothing of these profiles ran before: down, volumes kept
    assert compose_args(calls(runtime)[-1]) == ["down", "--remove-orphans"]


def test_a_service_never_healthy_is_named_with_its_last_log_lines(
    runtime: DockerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        docker_runtime, "wait_healthy", lambda *a, **k: Health(False, "connection refused")
    )
    with pytest.raises(PlatformError) as error:
        runtime.up(resolve("serving"), build=False)
    message = str(error.value)
    assert message.startswith("serving did not become healthy: connection refused")
    assert "serving-1  | the last line" in message
    steps = [compose_args(c) for c in calls(runtime)]
    assert steps[-2:] == [["logs", "--no-color", "--tail", "30"], ["down", "--remove-orphans"]]


def test_a_failed_up_keeps_what_ran_before_it(
    runtime: DockerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An up of a running stack where one new service never gets healthy removes that service
    only."""
    monkeypatch.setattr(docker_runtime, "wait_healthy", lambda *a, **k: Health(False, "refused"))
    runtime.env["FAKE_RUNNING"] = "redis"
    with pytest.raises(PlatformError, match="did not become healthy"):
        runtime.up(resolve("serving"), build=False)
    assert compose_args(calls(runtime)[-1]) == ["rm", "--stop", "--force", "serving"]


def test_build_builds_once_and_reports_each_image_size(
    runtime: DockerRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = runtime.build(resolve("serving"))
    assert sizes == {"mlops/serving:0.1.0": 123456789, "redis:7.4": 123456789}
    assert [c for c in map(compose_args, calls(runtime)) if c[:1] == ["build"]] == [
        ["build", "serving"]
    ]
    inspected = [c for c in calls(runtime) if c[0] == "docker"]
    assert len(inspected) == 2  # each image once
    assert "mlops/serving:0.1.0" in capsys.readouterr().out


def test_the_local_runtime_refuses_build(tmp_path: Path) -> None:
    from mlops_platform.launcher.runtimes.local import LocalRuntime

    env_file = tmp_path / ".env"
    ensure_env_file(REPO_ROOT / ".env.example", env_file)
    ctx = Context(settings=LauncherSettings.load(env_file), env_file=env_file)
    with pytest.raises(PlatformError, match="MLOPS_RUNTIME=docker"):
        LocalRuntime(ctx).build(resolve("all"))


def test_a_taken_port_refuses_up_before_anything_starts(runtime: DockerRuntime) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        runtime.env["FAKE_PORT"] = str(holder.getsockname()[1])
        with pytest.raises(PlatformError, match=r"nothing started: redis 127\.0\.0\.1:\d+"):
            runtime.up(resolve("feast"), build=False)
        assert not ups(runtime)
        # its own running container holds the port: an up again is fine
        runtime.env["FAKE_RUNNING"] = "redis"
        runtime.up(resolve("feast"), build=False)
    assert compose_args(calls(runtime)[-1]) == ["up", "-d"]


def test_status_per_profile_runs_ps_and_names_each_failed_check(
    runtime: DockerRuntime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        runtime, "checks", lambda service: [Check("redis", lambda: Health(False, "refused"))]
    )
    assert runtime.status(resolve("feast")) is False
    [call] = calls(runtime)
    assert call[call.index("--profile") + 1] == "feast"
    assert compose_args(call) == ["ps"]
    out = capsys.readouterr().out
    assert "feast      UNHEALTHY" in out
    assert "redis                  FAIL      refused" in out
    monkeypatch.setattr(
        runtime, "checks", lambda service: [Check("redis", lambda: Health(True, "PONG"))]
    )
    assert runtime.status(resolve("feast")) is True


@pytest.mark.parametrize(("follow", "extra"), [(False, []), (True, ["-f"])])
def test_logs_of_one_profile(runtime: DockerRuntime, follow: bool, extra: list[str]) -> None:
    assert runtime.logs(resolve("monitoring")[-1], follow=follow, lines=50) == 0
    [call] = calls(runtime)
    assert [call[i + 1] for i, w in enumerate(call) if w == "--profile"] == ["monitoring"]
    assert compose_args(call) == ["logs", "--tail", "50", *extra]


def test_an_engine_not_answering_is_named(runtime: DockerRuntime) -> None:
    runtime.env["FAKE_ENGINE_DOWN"] = "1"
    compose, why = docker_runtime.find_compose({**runtime.env, "DOCKER_HOST": "unix:///fake.sock"})
    assert compose is None
    assert why == (
        "the container engine is not answering at unix:///fake.sock (`docker info` failed: "
        "Cannot connect to the Docker daemon at unix:///fake.sock. Is the docker daemon running?)"
    )


def test_no_docker_cli_and_no_compose_v2_are_named(
    runtime: DockerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert docker_runtime.find_compose({"PATH": str(Path(runtime.env["FAKE_LOG"]).parent)}) == (
        None,
        "no docker CLI on PATH",
    )
    monkeypatch.setattr(docker_runtime, "bundled_compose", lambda: None)
    runtime.env["FAKE_COMPOSE_VERSION"] = "1.29.2"
    compose, why = docker_runtime.find_compose(runtime.env)
    assert compose is None
    assert why.startswith("no compose v2 was found (the engine answers; tried ")
    runtime.env["FAKE_COMPOSE_VERSION"] = "2.40.3"
    assert docker_runtime.find_compose(runtime.env)[0] is not None


def test_the_cli_refuses_the_docker_runtime_naming_the_engine(
    runtime: DockerRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_platform import cli

    env = {**runtime.env, "FAKE_ENGINE_DOWN": "1", "DOCKER_HOST": "unix:///fake.sock"}
    monkeypatch.setattr(cli, "docker_environment", lambda: env)
    settings = runtime.ctx.settings.model_copy(update={"mlops_runtime": "docker"})
    with pytest.raises(PlatformError) as error:
        cli.choose_runtime(Context(settings=settings, env_file=runtime.ctx.env_file))
    assert str(error.value).startswith(
        "MLOPS_RUNTIME=docker but the container engine is not answering at unix:///fake.sock"
    )
    assert "./run.sh engine up" in str(error.value)
