"""Runs .gitlab-ci.yml offline with gitlab-ci-local: which jobs a pipeline selects, and the lint
and test jobs themselves (`make ci-local`).

gitlab-ci-local evaluates `rules: changes:` as `git diff --name-only origin/<default branch>`
(the default branch from `refs/remotes/origin/HEAD`, else `main`), against the working tree. A
scenario is therefore a throw-away git repository: the project's files (tracked and not ignored,
as they are in the working tree now) committed as `origin/main`, then one change committed on a
branch. Pipeline kinds are GitLab's predefined variables: a merge request pipeline sets
CI_PIPELINE_SOURCE=merge_request_event and has no CI_COMMIT_BRANCH, a tag pipeline CI_COMMIT_TAG.

    python -m mlops_platform.cicd.ci_local list model_serving/src/model_serving/__init__.py [--mr]
    python -m mlops_platform.cicd.ci_local run                 # what `make ci-local` runs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops_platform.launcher.paths import REPO_ROOT

#: 4.74 and later crash on Node.js 20 (STACK-FACTS); 4.73.0 needs Node.js >= 20.
GITLAB_CI_LOCAL_VERSION = "4.73.0"
NODE_MAJOR_MIN = 20
TOOLS_DIR = REPO_ROOT / ".cache" / "ci-tools"
CHANGE_MARKER = "# ci-local scenario change\n"


class CiLocalError(RuntimeError):
    """gitlab-ci-local cannot be installed or run here; the message says what is missing."""


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise CiLocalError(
            f"node not found: gitlab-ci-local needs Node.js >= {NODE_MAJOR_MIN} (and npm)"
        )
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if not match or int(match[1]) < NODE_MAJOR_MIN:
        raise CiLocalError(f"node {version} at {node}: gitlab-ci-local needs >= {NODE_MAJOR_MIN}")
    return node


def gitlab_ci_local(tools_dir: Path = TOOLS_DIR) -> list[str]:
    """The command that runs the pinned gitlab-ci-local, installed from npm when absent."""
    node = node_binary()
    package = tools_dir / "node_modules" / "gitlab-ci-local"
    manifest = package / "package.json"
    installed = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
    if installed != GITLAB_CI_LOCAL_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            raise CiLocalError("npm not found: needed once to install gitlab-ci-local")
        tools_dir.mkdir(parents=True, exist_ok=True)
        print(
            f"installing gitlab-ci-local@{GITLAB_CI_LOCAL_VERSION} into {tools_dir}",
            file=sys.stderr,
            flush=True,
        )
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(tools_dir),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"gitlab-ci-local@{GITLAB_CI_LOCAL_VERSION}",
            ],
            check=True,
        )
        installed = json.loads(manifest.read_text())["version"]
        if installed != GITLAB_CI_LOCAL_VERSION:
            raise CiLocalError(f"npm installed gitlab-ci-local {installed}")
    return [node, str(package / "dist" / "index.js")]


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=ci-local",
            "-c",
            "user.email=ci-local@localhost",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise CiLocalError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def project_files(source: Path = REPO_ROOT) -> list[str]:
    """Tracked and untracked-but-not-ignored files of the working tree, as they are now."""
    listed = _git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted(name for name in listed.split("\0") if name and (source / name).is_file())


def scenario_repo(
    dest: Path, changed: Sequence[str], source: Path = REPO_ROOT, branch: str = "feature"
) -> Path:
    """A git repository at `dest`: the project committed as origin/main, then a commit on
    `branch` that appends a comment line to each file of `changed` (created when absent).
    `branch` may be "main": a push to the default branch (origin/main is then the commit
    before the push, as GitLab's before-SHA)."""
    dest.mkdir(parents=True)
    for name in project_files(source):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target, follow_symlinks=False)
    _git(dest, "init", "--quiet", "--initial-branch=main")
    _git(dest, "add", "--all")
    _git(dest, "commit", "--quiet", "--message", "base: the project as it is")
    _git(dest, "update-ref", "refs/remotes/origin/main", "HEAD")
    _git(dest, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    if branch != "main":
        _git(dest, "checkout", "--quiet", "-b", branch)
    for name in changed:
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(CHANGE_MARKER)
    _git(dest, "add", "--all")
    _git(
        dest,
        "commit",
        "--quiet",
        "--allow-empty",
        "--message",
        f"change {', '.join(changed) or 'nothing'}",
    )
    return dest


@dataclass(frozen=True)
class Pipeline:
    """A kind of pipeline, as GitLab's predefined variables describe it."""

    name: str
    variables: Mapping[str, str]
    unset: tuple[str, ...] = ()

    def options(self) -> list[str]:
        args: list[str] = []
        for key, value in self.variables.items():
            args += ["--variable", f"{key}={value}"]
        for key in self.unset:
            args += ["--unset-variable", key]
        overridden = sorted({*self.variables, *self.unset})
        if overridden:
            args += ["--ignore-predefined-vars", ",".join(overridden)]
        return args


BRANCH_PUSH = Pipeline("branch push", {})
MERGE_REQUEST = Pipeline(
    "merge request",
    {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_MERGE_REQUEST_IID": "1",
    },
    unset=("CI_COMMIT_BRANCH",),
)
RELEASE_TAG = Pipeline("release tag", {"CI_COMMIT_TAG": "v1.2.3"}, unset=("CI_COMMIT_BRANCH",))


def list_jobs(repo: Path, pipeline: Pipeline = BRANCH_PUSH) -> dict[str, str]:
    """job name -> `when` (on_success, manual, never, ...) as gitlab-ci-local evaluates it."""
    result = subprocess.run(
        [*gitlab_ci_local(), "--list-json", "--no-color", *pipeline.options()],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise CiLocalError(f"gitlab-ci-local --list-json failed:\n{result.stdout}{result.stderr}")
    # warnings come first on stdout; the JSON list is the rest
    start = result.stdout.find("\n[")
    text = result.stdout[start + 1 :] if start >= 0 else result.stdout
    jobs = json.loads(text)
    return {job["name"]: job["when"] for job in jobs}


def selected(jobs: Mapping[str, str]) -> set[str]:
    return {name for name, when in jobs.items() if when != "never"}


def host_variables() -> dict[str, str]:
    """What a job needs to run on this machine instead of a GitLab runner: the machine's uv
    cache (hard links, no download), PostgreSQL and Redis on loopback."""
    uv = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    cache = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=True)
    return {
        "UV_CACHE_DIR": cache.stdout.strip(),
        "UV_LINK_MODE": "hardlink",
        "MLOPS_TEST_POSTGRES_URL": os.environ.get(
            "MLOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"
        ),
        "MLOPS_TEST_REDIS_URL": os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    }


#: The file `run_jobs` hands gitlab-ci-local (untracked: invisible to `rules: changes:`).
LOCAL_VARIANT = ".gitlab-ci.local-run.yml"


def local_variant(ci_config: str, host: Mapping[str, str]) -> str:
    """.gitlab-ci.yml for the shell executor on this machine: the same jobs, scripts and rules,
    without `services:` (service containers need a Docker engine, which gitlab-ci-local asks for
    even with --force-shell-executor) and with `host`'s values for the variables that point at
    those services and at uv's cache."""
    config: dict[str, Any] = yaml.safe_load(ci_config)
    config.setdefault("variables", {}).update(host)
    for job in config.values():
        if isinstance(job, dict):
            job.pop("services", None)
            variables = job.get("variables")
            if isinstance(variables, dict):
                for key in host.keys() & variables.keys():
                    variables[key] = host[key]
    return yaml.safe_dump(config, sort_keys=False, width=100)


def run_jobs(repo: Path, jobs: Sequence[str], pipeline: Pipeline = BRANCH_PUSH) -> float:
    """Runs `jobs` with the shell executor; returns the seconds it took. Raises when a job is
    not selected by the rules (of the real .gitlab-ci.yml) or fails."""
    listed = list_jobs(repo, pipeline)
    unselected = [job for job in jobs if listed.get(job, "never") == "never"]
    if unselected:
        raise CiLocalError(f"not selected by the rules for this change: {unselected}")
    host = host_variables()
    (repo / LOCAL_VARIANT).write_text(
        local_variant((repo / ".gitlab-ci.yml").read_text(encoding="utf-8"), host),
        encoding="utf-8",
    )
    variables = Pipeline(pipeline.name, {**host, **pipeline.variables}, pipeline.unset)
    uv_dir = str(Path(shutil.which("uv") or Path.home() / ".local/bin/uv").parent)
    env = {**os.environ, "PATH": f"{uv_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"}
    started = time.monotonic()
    result = subprocess.run(
        [
            *gitlab_ci_local(),
            "--file",
            LOCAL_VARIANT,
            "--force-shell-executor",
            "--no-color",
            "--timestamps",
            *variables.options(),
            *jobs,
        ],
        cwd=repo,
        env=env,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise CiLocalError(f"gitlab-ci-local {' '.join(jobs)} failed (exit {result.returncode})")
    return elapsed


#: `make ci-local`: a change, and the lint and test jobs it must select and pass.
RUN_SCENARIOS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model_serving/src/model_serving/__init__.py", ("lint:model_serving", "test:model_serving")),
    ("data_pipeline/src/data_pipeline/__init__.py", ("lint:data_pipeline", "test:data_pipeline")),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_platform.cicd.ci_local")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the jobs a pipeline for a change selects")
    listing.add_argument("changed", nargs="+")
    listing.add_argument("--mr", action="store_true", help="a merge request pipeline")
    sub.add_parser("run", help="run the lint and test jobs of each scenario (make ci-local)")
    sub.add_parser("install", help="install gitlab-ci-local (pinned) and print its command")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(" ".join(gitlab_ci_local()))
            return 0
        with tempfile.TemporaryDirectory(prefix="ci-local-") as tmp:
            if args.command == "list":
                repo = scenario_repo(Path(tmp) / "repo", args.changed)
                jobs = list_jobs(repo, MERGE_REQUEST if args.mr else BRANCH_PUSH)
                for name, when in jobs.items():
                    if when != "never":
                        print(f"{name:<32} {when}")
                return 0
            timings: list[tuple[str, float]] = []
            for number, (changed, jobs_to_run) in enumerate(RUN_SCENARIOS):
                repo = scenario_repo(Path(tmp) / f"repo{number}", [changed])
                picked = sorted(selected(list_jobs(repo)))
                print(
                    f"\n=== change {changed}\n    selected: {' '.join(picked)}\n"
                    f"    running:  {' '.join(jobs_to_run)}",
                    flush=True,
                )
                timings.append((changed, run_jobs(repo, jobs_to_run)))
            print("\nci-local passed:")
            for (changed, seconds), (_, jobs_run) in zip(timings, RUN_SCENARIOS, strict=True):
                print(f"  {' + '.join(jobs_run):<45} {seconds:6.0f} s   (change {changed})")
    except (CiLocalError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
