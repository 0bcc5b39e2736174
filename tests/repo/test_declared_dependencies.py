"""Every workspace member declares exactly what its code imports (deptry).

Missing declarations (DEP001/DEP003: imported but only present transitively or not at all) and
unused ones (DEP002) both fail. The few runtime-only dependencies (a database driver loaded by
URL, executables the local runtime starts, package data) are listed, with the reason, in each
member's `[tool.deptry]`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MEMBERS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]


def _deptry(member: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("deptry", path=str(Path(sys.executable).parent))
    assert binary, "deptry is a dev dependency: run make setup"
    return subprocess.run(
        [binary, "src", "--no-ansi"],
        cwd=member,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("member", MEMBERS)
def test_dependencies_are_what_the_code_imports(member: str) -> None:
    result = _deptry(REPO / member)
    assert result.returncode == 0, f"{member}:\n{result.stdout}{result.stderr}"
    assert "No dependency issues found" in result.stdout + result.stderr


def test_an_undeclared_import_fails(tmp_path: Path) -> None:
    """deptry over a member that imports a package it does not declare must fail."""
    (tmp_path / "src" / "thing").mkdir(parents=True)
    (tmp_path / "src" / "thing" / "__init__.py").write_text("import yaml\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "thing"\nversion = "0"\ndependencies = ["redis"]\n'
    )
    result = _deptry(tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode != 0
    assert "DEP003 'yaml'" in report or "DEP001 'yaml'" in report
    assert "DEP002 'redis'" in report
