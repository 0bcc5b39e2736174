"""Code version of a run: the git commit of the checkout the pipeline runs from."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

UNKNOWN = "unknown"


@dataclass(frozen=True)
class CodeVersion:
    commit: str
    #: True when the checkout has uncommitted changes (None: unknown)
    dirty: bool | None


def code_version(where: Path | None = None) -> CodeVersion:
    """``MLOPS_GIT_COMMIT`` when set (images built without ``.git``), else ``git rev-parse HEAD``
    in the checkout holding this package, else ``unknown``."""
    explicit = os.environ.get("MLOPS_GIT_COMMIT", "").strip()
    if explicit:
        return CodeVersion(commit=explicit, dirty=None)
    cwd = where or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return CodeVersion(commit=UNKNOWN, dirty=None)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(commit=UNKNOWN, dirty=None)
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return CodeVersion(commit=head.stdout.strip() or UNKNOWN, dirty=dirty)
