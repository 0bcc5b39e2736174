"""Where the repository and its platform configuration live."""

from __future__ import annotations

import os
from pathlib import Path


def _find_repo_root() -> Path:
    """The checkout this launcher runs from: `MLOPS_REPO_ROOT`, else the folder holding run.sh."""
    override = os.environ.get("MLOPS_REPO_ROOT")
    if override:
        return Path(override).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "run.sh").is_file() and (parent / "platform").is_dir():
            return parent
    return Path.cwd().resolve()


REPO_ROOT = _find_repo_root()
PLATFORM_DIR = REPO_ROOT / "platform"
COMPONENT_DAG_FOLDERS = ("data_pipeline", "training_pipeline", "model_serving")
