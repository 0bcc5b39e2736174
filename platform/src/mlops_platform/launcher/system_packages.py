"""Installs the Debian packages the local runtime needs, when running as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

_POLICY_RC = Path("/usr/sbin/policy-rc.d")
_apt_updated = False


class MissingSystemPackage(RuntimeError):
    """A binary the service needs is absent and cannot be installed here."""


def ensure_binaries(packages: dict[str, str]) -> dict[str, str]:
    """Make every binary available, installing its Debian package when missing.

    `packages` maps a binary name to the Debian package that ships it. Returns binary -> path.
    Package scripts must not start the Debian system services: the platform supervises its own
    processes, so installs run with a policy-rc.d that forbids service starts.
    """
    missing = {binary: pkg for binary, pkg in packages.items() if shutil.which(binary) is None}
    if missing:
        wanted = sorted(set(missing.values()))
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise MissingSystemPackage(
                "missing "
                + ", ".join(sorted(missing))
                + ": install the Debian package(s) "
                + " ".join(wanted)
                + " (sudo apt-get install -y "
                + " ".join(wanted)
                + ")"
            )
        apt_install(wanted)
    found = {binary: shutil.which(binary) for binary in packages}
    still_missing = sorted(binary for binary, path in found.items() if path is None)
    if still_missing:
        raise MissingSystemPackage(f"installed packages but still missing {still_missing}")
    return {binary: str(path) for binary, path in found.items()}


# Wait for another apt/dpkg (a second clone's setup on a shared machine) instead of failing at
# once on its lock.
APT_LOCK_WAIT = ["-o", "DPkg::Lock::Timeout=600"]


def apt_install(packages: list[str]) -> None:
    global _apt_updated
    print(f"  installing Debian packages: {' '.join(packages)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    created_policy = False
    if not _POLICY_RC.exists():
        _POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        _POLICY_RC.chmod(0o755)
        created_policy = True
    try:
        if not _apt_updated:
            subprocess.run(["apt-get", *APT_LOCK_WAIT, "update", "-qq"], check=True, env=env)
            _apt_updated = True
        subprocess.run(
            [
                "apt-get",
                *APT_LOCK_WAIT,
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                *packages,
            ],
            check=True,
            env=env,
        )
    finally:
        if created_policy:
            _POLICY_RC.unlink(missing_ok=True)


# Every Debian package the local runtime and the tests use, by the binary that shows it is there.
PLATFORM_BINARIES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
}

# What the CI checks need (gitlab-ci-local runs jobs from an rsync'ed copy of the git checkout).
# Node.js 20 (gitlab-ci-local's engine) is checked by mlops_platform.cicd.ci_local: Debian 12's own
# nodejs is 18, so it is not installed from here.
CI_BINARIES = {
    "git": "git",
    "rsync": "rsync",
}


def main() -> int:
    """`python -m mlops_platform.launcher.system_packages`: install whatever is missing
    (make setup, the CI test jobs)."""
    try:
        paths = ensure_binaries({**PLATFORM_BINARIES, **CI_BINARIES})
    except (MissingSystemPackage, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}")
        return 1
    print("system packages ok: " + ", ".join(sorted(paths)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
