"""The experiment readouts: events carrying experiment and arm are counted exactly once in the
state store, read out into the monitoring_experiment_* gauges, and a bandit's allocation is
written back to the experiment store (SQLite here; its PostgreSQL side is tested in
common/tests). No Redis: the events go through ``Store.apply`` as the consumer hands them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mon_fixtures import Traffic
from prometheus_client import generate_latest
from sqlalchemy import create_engine

from mlops_common.experiment_store import ExperimentStore
from mlops_common.experiments import ExperimentSpec, ExperimentTag
from monitoring_service.cli import main
from monitoring_service.experiments import ExperimentReadouts
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import Parsed, Store
from monitoring_service.windows import WindowPolicy


def tagged(n: int, arm: str, rate: float, seed: int) -> list[Parsed]:
    """``n`` predictions routed to ``arm`` of ``ab1`` and their feedback (completed at ``rate``)."""
    rng = np.random.default_rng(seed)
    tag = ExperimentTag(experiment="ab1", arm=arm)
    out: list[Parsed] = []
    for i, (event, _) in enumerate(Traffic(seed=seed, candidates=2).predictions(n)):
        event = event.model_copy(update={"experiment": tag})
        label = Traffic.feedback(event, bool(rng.random() < rate)).model_copy(
            update={"experiment": tag}
        )
        out += [
            Parsed("prediction", f"{seed}{i:06d}-0", event),
            Parsed("feedback", f"{seed}{i:06d}-1", label),
        ]
    return out


def spec(allocation: str) -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "ab1",
            "model_name": "m",
            "allocation": allocation,
            "arms": [
                {"name": "control", "version": "1", "weight": 0.5},
                {"name": "treatment", "version": "2", "weight": 0.5},
            ],
            "min_samples_per_arm": 100,
            "stopping": {"max_samples_per_arm": 5000, "minimum_detectable_effect": 0.1},
        }
    )


def setup(tmp_path: Path, allocation: str) -> tuple[Store, ExperimentStore, ExperimentReadouts]:
    store = Store(tmp_path / "state.db", WindowPolicy(size=10_000, seconds=3600, label_grace_s=60))
    experiments = ExperimentStore(create_engine(f"sqlite:///{tmp_path / 'experiments.db'}"))
    experiments.create(spec(allocation))
    experiments.start("ab1")
    readouts = ExperimentReadouts(store, lambda: experiments, MonitoringMetrics(), 60.0, seed=1)
    return store, experiments, readouts


def test_a_better_arm_wins_and_the_readout_is_exported(tmp_path: Path) -> None:
    store, _, readouts = setup(tmp_path, "fixed")
    batch = tagged(600, "control", 0.5, seed=1) + tagged(600, "treatment", 0.75, seed=2)
    store.apply(batch)
    store.apply(batch[:100])  # redelivered entries count once
    assert store.experiment_arms("ab1")["control"][:2] == (600, 600)
    result = readouts.tick()["ab1"]
    assert (result.verdict, result.arm) == ("winner", "treatment")
    text = generate_latest(readouts._metrics.registry).decode()
    assert 'monitoring_experiment_verdict{experiment="ab1",verdict="winner"} 1.0' in text
    assert 'monitoring_experiment_requests{arm="treatment",experiment="ab1"} 600.0' in text
    assert 'monitoring_experiment_srm{experiment="ab1"} 0.0' in text


def test_a_bandit_moves_traffic_to_the_better_arm(tmp_path: Path) -> None:
    store, experiments, readouts = setup(tmp_path, "thompson")
    store.apply(tagged(300, "control", 0.4, seed=3) + tagged(300, "treatment", 0.6, seed=4))
    readouts.tick()
    weights = experiments.get("ab1").weights
    assert weights["treatment"] > 0.9 and weights["control"] >= 0.05 - 1e-9
    text = generate_latest(readouts._metrics.registry).decode()
    assert 'monitoring_experiment_allocation{arm="treatment",experiment="ab1"}' in text


def test_the_cli_prints_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    settings = MonitoringSettings.load()
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_path, settings.window_policy)
    store.apply(tagged(600, "control", 0.5, seed=5) + tagged(600, "treatment", 0.3, seed=6))
    store.close()
    experiments = ExperimentStore.from_settings(settings)
    experiments.create(spec("fixed"))
    experiments.close()
    assert main(["experiment", "ab1"]) == 0
    out = capsys.readouterr().out
    assert "ab1 (created, fixed): harmful (treatment)" in out
    assert "sample ratio check: p = 1" in out
    assert main(["experiment", "nope"]) == 1
    assert "no experiment named 'nope'" in capsys.readouterr().err
