"""The local runtime's copy of prometheus.yml: absolute rule paths, its own target folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from mlops_platform.launcher.paths import PLATFORM_DIR
from mlops_platform.launcher.services.prom_graf import render_prometheus_config


def test_rendered_config_points_at_local_targets_and_repo_rules(tmp_path: Path) -> None:
    source = PLATFORM_DIR / "prometheus" / "prometheus.yml"
    config = render_prometheus_config(source, tmp_path / "targets")
    rules = config["rule_files"]
    assert isinstance(rules, list) and rules
    assert all(Path(r).is_absolute() and str(PLATFORM_DIR) in r for r in rules)
    jobs = config["scrape_configs"]
    assert isinstance(jobs, list)
    files = [f for job in jobs for sd in job.get("file_sd_configs", []) for f in sd["files"]]
    assert files and all(f.startswith(str(tmp_path / "targets")) for f in files)
    names = {job["job_name"] for job in jobs}
    assert {"prometheus", "alertmanager", "mlflow", "airflow"} <= names

    # and promtool accepts it
    out = tmp_path / "prometheus.yml"
    out.write_text(yaml.safe_dump(config))
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: install the Debian package prometheus (make setup)"
    result = subprocess.run([promtool, "check", "config", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
