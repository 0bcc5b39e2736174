"""Component boundaries: no component imports a sibling, mlops_common imports no component.

The contracts are in the root pyproject.toml ([tool.importlinter]); this runs import-linter over
the installed workspace, so a new sibling import fails `make test` with the offending line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert binary, "import-linter is a dev dependency: run make setup"
    return subprocess.run(
        [binary, "--config", str(config), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_components_import_only_mlops_common() -> None:
    result = _lint_imports(REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_the_check_fails_on_a_sibling_import(tmp_path: Path) -> None:
    """The same contracts over a copy of the workspace's names with one sibling import added:
    import-linter must report it (the check above can fail)."""
    root = tmp_path / "src"
    for name in ("mlops_common", "model_serving", "monitoring_service"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text("")
    (root / "monitoring_service" / "bad.py").write_text("import model_serving\n")
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["mlops_common", "model_serving", '
        '"monitoring_service"]\n\n[[tool.importlinter.contracts]]\nname = "independent"\n'
        'type = "independence"\nmodules = ["model_serving", "monitoring_service"]\n'
    )
    binary = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert binary
    result = subprocess.run(
        [binary, "--config", str(config), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "monitoring_service.bad -> model_serving" in result.stdout
