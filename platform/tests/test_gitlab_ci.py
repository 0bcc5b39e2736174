""".gitlab-ci.yml, checked offline: GitLab's schema (check-jsonschema), its shape, its rules
against the component table of mlops_platform.cicd.deploy, and the jobs gitlab-ci-local (pinned,
installed from npm into .cache/ci-tools when absent) selects for pipelines of different changes.

gitlab-ci-local evaluates `rules: changes:` by diffing the working tree against
origin/<default branch>: each scenario is a scratch repository (mlops_platform.cicd.ci_local) whose
origin/main is the project as it is and whose branch adds one change. `make ci-local` runs the
selected lint and test jobs for real; here only the selection is checked (about 2 s a pipeline).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_platform.cicd import ci_local
from mlops_platform.cicd.deploy import (
    COMPONENTS,
    IMAGES,
    component_changes,
    image_changes,
)
from mlops_testing.dockerfiles import target_stages

REPO = Path(__file__).resolve().parents[2]
CI_FILE = REPO / ".gitlab-ci.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
NAMES = [c.name for c in COMPONENTS]


def lint_test(*components: str) -> set[str]:
    return {f"{kind}:{c}" for c in components for kind in ("lint", "test")}


MODEL_JOBS = {
    f"model-{action}:{env}"
    for action in ("promote", "rollback")
    for env in ("dev", "staging", "prod")
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CI_FILE.read_text())
    return loaded


def jobs_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keywords = {
        "stages",
        "workflow",
        "variables",
        "default",
        "include",
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
    }
    return {
        name: job
        for name, job in config.items()
        if not name.startswith(".") and name not in keywords
    }


def resolved(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A job with its `extends` merged in (GitLab's deep merge of hashes, lists replaced)."""
    job = dict(config[name])
    parents = job.pop("extends", [])
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, resolved(config, parent))
    return _merge(merged, job)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """GitLab's ``extends``: mappings present on both sides merge deeply, the rest is replaced."""
    deep = {
        key: _merge(base[key], value)
        for key, value in over.items()
        if isinstance(value, dict) and isinstance(base.get(key), dict)
    }
    return {**base, **over, **deep}


# --- schema --------------------------------------------------------------------------------


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    assert CHECK_JSONSCHEMA.is_file(), f"check-jsonschema not installed next to {sys.executable}"
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_gitlab_schema_accepts_the_pipeline() -> None:
    result = check_jsonschema(CI_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_gitlab_schema_rejects_a_broken_pipeline(tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(
        CI_FILE.read_text()
        .replace("  stage: lint\n", "  stage: [lint]\n", 1)
        .replace("  when: manual\n", "  when: sometimes\n", 1)
    )
    result = check_jsonschema(broken)
    assert result.returncode == 1, result.stdout


# --- shape -----------------------------------------------------------------------------------


def test_stages_and_per_component_jobs(config: dict[str, Any]) -> None:
    assert config["stages"] == ["lint", "test", "build", "deploy"]
    jobs = jobs_of(config)
    expected = (
        lint_test(*NAMES)
        | {f"build:{image.component}" for image in IMAGES}
        | {"images:plan", "deploy:dev", "deploy:staging", "deploy:prod"}
        | MODEL_JOBS
    )
    assert set(jobs) == expected
    stage_of_prefix = {
        "lint": "lint",
        "test": "test",
        "build": "build",
        "deploy": "deploy",
        "model-promote": "deploy",
        "model-rollback": "deploy",
        "images": ".pre",
    }
    for name in jobs:
        assert resolved(config, name)["stage"] == stage_of_prefix[name.split(":")[0]], name


def test_lint_and_test_jobs_run_only_their_component(config: dict[str, Any]) -> None:
    for component in COMPONENTS:
        lint = resolved(config, f"lint:{component.name}")
        assert lint["variables"]["COMPONENT"] == component.name
        assert 'uv run --frozen ruff check "$COMPONENT"' in lint["script"]
        assert 'uv run --frozen mypy "$COMPONENT/src"' in lint["script"]
        test = resolved(config, f"test:{component.name}")
        assert test["variables"]["COMPONENT"] == component.name
        [pytest_line] = [line for line in test["script"] if "pytest" in line]
        assert pytest_line.startswith('uv run --frozen pytest "$COMPONENT/tests" -m "not slow"')
        assert "--junitxml=reports/junit.xml" in pytest_line
        assert '--cov="$COVERAGE_PACKAGE"' in pytest_line
        special = {"platform": "mlops_platform", "common": "mlops_common"}
        package = special.get(component.name, component.name)
        assert test["variables"]["COVERAGE_PACKAGE"] == package
        assert (REPO / component.name / "src" / package).is_dir()
        # test reports and coverage reach GitLab
        reports = test["artifacts"]["reports"]
        assert reports["junit"] == "reports/junit.xml"
        assert reports["coverage_report"] == {
            "coverage_format": "cobertura",
            "path": "reports/coverage.xml",
        }
        assert test["artifacts"]["when"] == "always"
        assert test["coverage"].startswith("/^TOTAL")
        # real PostgreSQL and Redis as services
        assert {s["alias"] for s in test["services"]} == {"postgres", "redis"}
        # the uv cache is kept between jobs, keyed by the lock
        for job in (lint, test):
            assert job["cache"]["key"]["files"] == ["uv.lock"]
            assert job["cache"]["paths"] == [".cache/uv"]
            assert "uv sync --frozen --quiet" in job["before_script"]
    assert config["variables"]["UV_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/uv"


def test_platform_lint_checks_the_ci_file_and_the_dockerfiles(config: dict[str, Any]) -> None:
    script = "\n".join(resolved(config, "lint:platform")["script"])
    assert "check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml" in script
    assert "hadolint" in script


def test_rules_match_the_component_table(config: dict[str, Any]) -> None:
    """Every lint/test job watches exactly its component's paths; every build job its image's."""
    for component in COMPONENTS:
        for kind in ("lint", "test"):
            rules = resolved(config, f"{kind}:{component.name}")["rules"]
            assert rules[0] == {"if": '$CI_COMMIT_TAG || $FULL_PIPELINE == "true"'}
            assert rules[1] == {"changes": component_changes(component)}, component.name
    for image in IMAGES:
        job = resolved(config, f"build:{image.component}")
        assert job["variables"]["IMAGE_NAME"] == image.name
        assert job["variables"]["DOCKERFILE"] == image.dockerfile
        assert job["variables"]["IMAGE_TAG_VARIABLE"] == image.tag_variable
        assert job["rules"][-1] == {
            "if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH",
            "changes": image_changes(image),
        }, image.name


def workspace_dependencies() -> dict[str, set[str]]:
    """member folder -> folders of the workspace members it depends on, transitively."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = root["tool"]["uv"]["workspace"]["members"]
    by_name = {
        tomllib.loads((REPO / f / "pyproject.toml").read_text())["project"]["name"]: f
        for f in folders
    }
    direct: dict[str, set[str]] = {}
    for folder in folders:
        project = tomllib.loads((REPO / folder / "pyproject.toml").read_text())["project"]
        names = {
            dep.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()
            for dep in project.get("dependencies", [])
        }
        direct[folder] = {by_name[n] for n in names if n in by_name}

    def closure(folder: str) -> set[str]:
        found: set[str] = set()
        for dep in direct[folder]:
            found |= {dep} | closure(dep)
        return found

    return {folder: closure(folder) for folder in folders}


def test_component_paths_cover_the_workspace_dependencies() -> None:
    """A change to a member's code runs the jobs of every member that depends on it."""
    deps = workspace_dependencies()
    for component in COMPONENTS:
        for dep in deps[component.name] - {"platform"}:
            assert f"{dep}/src/" in component.paths, (component.name, dep)
    for image in IMAGES:
        dockerfile = REPO / image.dockerfile
        assert dockerfile.is_file(), dockerfile
        built = target_stages(dockerfile, image.target)
        # the members the image installs (uv sync --package), with what they depend on
        names = {
            name
            for stage in built
            for keyword, args in stage.instructions
            if keyword == "RUN" and "uv sync" in args
            for name in re.findall(r"--package\s+(\S+)", args)
        }
        members = {member_folders()[name] for name in names}
        for member in set(members):
            members |= deps[member]
        for member in members - {"platform"}:
            assert f"{member}/src/" in image.paths, (image.name, member)
        # and what its own stages copy besides (the shared builder copies the whole workspace)
        copied = {s for stage in built if stage.name != "builder" for s in stage.copied_sources()}
        for source in copied:
            assert any(
                source == p.rstrip("/") or source.startswith(p) or p.startswith(source)
                for p in (*image.paths, "platform/")
            ), (image.name, source)


def member_folders() -> dict[str, str]:
    """workspace member name (pyproject) -> its folder."""
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {
        tomllib.loads((REPO / f / "pyproject.toml").read_text())["project"]["name"]: f
        for f in root["tool"]["uv"]["workspace"]["members"]
    }


def test_builds_use_buildah_without_a_docker_daemon(config: dict[str, Any]) -> None:
    for image in IMAGES:
        job = resolved(config, f"build:{image.component}")
        assert job["stage"] == "build"
        assert job["image"]["name"].startswith("quay.io/buildah/stable:v")
        assert "services" not in job and "DOCKER_HOST" not in job.get("variables", {})
        assert job["script"] == [
            'sh .ci/gitlab/build-image.sh "$IMAGE_NAME" "$DOCKERFILE" "$IMAGE_TAG_VARIABLE"'
        ]
        assert job["needs"] == [{"job": "images:plan", "artifacts": True}]
        assert job["rules"][0] == {
            "if": '$CI_PIPELINE_SOURCE == "merge_request_event"',
            "when": "never",
        }
    script = (REPO / ".ci/gitlab/build-image.sh").read_text()
    assert "buildah build" in script and "docker.sock" not in script
    assert '--tag "$image:$CI_COMMIT_SHA"' in script and 'buildah push "$image:$CI_COMMIT_SHA"'
    assert 'image="${CI_REGISTRY_IMAGE:?}/$name"' in script


def test_deploy_jobs(config: dict[str, Any]) -> None:
    for env in ("dev", "staging", "prod"):
        job = resolved(config, f"deploy:{env}")
        assert job["stage"] == "deploy"
        assert job["script"] == ['deploy/deploy.sh deploy "$DEPLOY_ENVIRONMENT"']
        assert job["variables"]["DEPLOY_ENVIRONMENT"] == env
        assert job["variables"]["GIT_DEPTH"] == "0"  # image revisions need the history
        assert job["environment"]["name"] == env
        assert job["resource_group"] == f"deploy-{env}"
    assert resolved(config, "deploy:staging")["needs"] == ["deploy:dev"]
    prod_rules = resolved(config, "deploy:prod")["rules"]
    assert prod_rules == [
        {"if": r"$CI_COMMIT_TAG =~ /^v\d+\.\d+\.\d+$/", "when": "manual", "allow_failure": False}
    ]
    for name in MODEL_JOBS:
        job = resolved(config, name)
        action, env = name.removeprefix("model-").split(":")
        assert f'deploy/deploy.sh model "$DEPLOY_ENVIRONMENT" {action}' in job["script"][0]
        assert job["variables"]["DEPLOY_ENVIRONMENT"] == env
        assert all(rule.get("when") in {"manual", "never"} for rule in job["rules"])


# --- which jobs run: gitlab-ci-local -----------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., set[str]]:
    """pipeline(changed files, kind, branch) -> the jobs gitlab-ci-local selects."""
    ci_local.gitlab_ci_local()  # install once, before the first listing

    def run(
        changed: list[str], kind: ci_local.Pipeline = ci_local.BRANCH_PUSH, branch: str = "feature"
    ) -> set[str]:
        repo = ci_local.scenario_repo(
            tmp_path_factory.mktemp("scenario") / "repo", changed, branch=branch
        )
        jobs = ci_local.list_jobs(repo, kind)
        assert set(jobs) == set(jobs_of(yaml.safe_load(CI_FILE.read_text())))
        picked: set[str] = ci_local.selected(jobs)
        return picked

    return run


def test_a_serving_change_runs_serving_jobs_only(pipeline: Callable[..., set[str]]) -> None:
    selected = pipeline(["model_serving/src/model_serving/app.py"])
    # no component imports model_serving (the event schema is a contract in mlops_common)
    assert selected == lint_test("model_serving")


def test_a_contract_change_runs_every_component(pipeline: Callable[..., set[str]]) -> None:
    selected = pipeline(["common/src/mlops_common/events/serving.py"])
    assert selected == lint_test(*NAMES)


def test_a_data_pipeline_change_runs_it_and_its_dependents(
    pipeline: Callable[..., set[str]],
) -> None:
    selected = pipeline(["data_pipeline/src/data_pipeline/feature_store.py"])
    # their tests build features with the data pipeline (their code does not import it)
    assert selected == lint_test(
        "data_pipeline",
        "training_pipeline",
        "model_serving",
        "stream_emitting",
    )


def test_a_data_pipeline_test_change_runs_its_own_jobs(pipeline: Callable[..., set[str]]) -> None:
    assert pipeline(["data_pipeline/tests/test_dp_dags.py"]) == lint_test("data_pipeline")


def test_a_shared_change_runs_every_component(pipeline: Callable[..., set[str]]) -> None:
    assert pipeline(["uv.lock"]) == lint_test(*NAMES)


def test_a_docs_change_runs_nothing(pipeline: Callable[..., set[str]]) -> None:
    assert pipeline(["docs/cicd.md"]) == set()


def test_merge_request_pipelines_lint_and_test_only(pipeline: Callable[..., set[str]]) -> None:
    assert pipeline(["model_serving/src/model_serving/app.py"], ci_local.MERGE_REQUEST) == (
        lint_test("model_serving")
    )
    # even a shared change: every lint and test job, no build, no deploy
    assert pipeline(["platform/docker/with-build-ca"], ci_local.MERGE_REQUEST) == lint_test(*NAMES)


def test_default_branch_builds_changed_images_and_deploys(
    pipeline: Callable[..., set[str]],
) -> None:
    selected = pipeline(["model_serving/src/model_serving/app.py"], branch="main")
    assert selected == (
        lint_test("model_serving")
        # the Airflow image carries model_serving (its batch prediction DAG tasks)
        | {"images:plan", "build:model_serving", "build:airflow"}
        | {"deploy:dev", "deploy:staging"}
        | MODEL_JOBS
    )


def test_release_tag_runs_everything_and_offers_prod(pipeline: Callable[..., set[str]]) -> None:
    repo_jobs = pipeline([], ci_local.RELEASE_TAG, branch="main")
    assert repo_jobs == (
        lint_test(*NAMES)
        | {"images:plan"}
        | {f"build:{image.component}" for image in IMAGES}
        | {"deploy:prod"}
        | MODEL_JOBS
    )
