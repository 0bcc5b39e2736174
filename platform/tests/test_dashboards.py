"""The provisioned Grafana dashboards (platform/grafana/dashboards), offline.

No Grafana server runs on these machines (no package on the reachable registries), so the JSON
is checked here: it is what `mlops_platform.observability.dashboards` builds, its structure is
what Grafana provisions (stable uids, row and panel layout, targets), the only datasource uid is the
provisioned one, and every panel query is valid PromQL (promtool checks each one as a recording
rule expression). That every query returns data on a running platform is checked by the
end-to-end test against a real Prometheus scraping the real services (tests/e2e).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_platform.launcher.paths import PLATFORM_DIR
from mlops_platform.observability import dashboards

DASHBOARD_FILES = sorted((PLATFORM_DIR / "grafana" / "dashboards").glob("*.json"))
PROVISIONED = yaml.safe_load(
    (PLATFORM_DIR / "grafana/provisioning/datasources/prometheus.yml").read_text()
)["datasources"][0]["uid"]
REQUIRED = {
    "mlops-serving": "Serving",
    "mlops-drift": "Data and prediction drift",
    "mlops-quality": "Model quality",
    "mlops-platform": "Pipelines and platform health",
    "mlops-experiments": "Experiments",
}


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def datasource_uids(node: Any) -> list[str]:
    """Every `datasource.uid` anywhere in a JSON model."""
    found: list[str] = []
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            found.append(str(source["uid"]))
        elif isinstance(source, str):
            found.append(source)  # a datasource given by name: not allowed either
        for value in node.values():
            found.extend(datasource_uids(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(datasource_uids(item))
    return found


def test_the_committed_json_is_what_the_definitions_build() -> None:
    assert dashboards.main(["--check"]) == 0
    assert {d.filename for d in dashboards.DASHBOARDS} == {p.name for p in DASHBOARD_FILES}


def test_the_dashboards_exist_with_stable_uids() -> None:
    found = {load(p)["uid"]: load(p)["title"] for p in DASHBOARD_FILES}
    assert found == REQUIRED
    for path in DASHBOARD_FILES:
        assert path.stem == load(path)["uid"]  # the file name is the uid: never renamed silently


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_structure(path: Path) -> None:
    model = load(path)
    assert model["schemaVersion"] >= 36 and model["editable"] is False
    assert set(datasource_uids(model)) == {PROVISIONED} == {"prometheus"}
    panels = model["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert panels[0]["type"] == "row"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "stat"}
        assert panel["title"].strip()
        targets = panel["targets"]
        assert targets, panel["title"]
        assert [t["refId"] for t in targets] == [chr(ord("A") + i) for i in range(len(targets))]
        for target in targets:
            assert target["expr"].strip(), panel["title"]


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: install the Debian package prometheus"
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, (_, expr) in enumerate(
            q for path in DASHBOARD_FILES for q in dashboards.queries(load(path))
        )
    ]
    assert len(rules) > 40
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    """The PromQL check above can fail: promtool refuses a malformed expression."""
    promtool = shutil.which("promtool")
    assert promtool
    rule_file = tmp_path / "broken.yml"
    rule_file.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(up[5m])"}]}]}
        )
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
