"""The experiment readouts: events carrying experiment and arm are counted exactly once in the
state store, read out into the monitoring_experiment_* gauges, and a bandit's allocation is
written back to the experiment store (SQLite here; its PostgreSQL side is tested in
common/tests). No Redis: the events go through ``Store.apply`` as the consumer hands them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mon_fixtures import Traffic
from prometheus_client import generate_latest
from sqlalchemy import create_engine

from mlops_common.experiment_store import ExperimentStore
from mlops_common.experiments import ExperimentSpec, ExperimentTag
from monitoring_service.experiments import ExperimentReadouts
from monitoring_service.metrics import MonitoringMetrics
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


def setup(tmp_path: Path, allocation: str) -> tuple[Store, ExperimentStore, ExperimentReadouts]:
    store = Store(tmp_path / "state.db", WindowPolicy(size=10_000, seconds=3600, label_grace_s=60))
    experiments = ExperimentStore(create_engine(f"sqlite:///{tmp_path / 'experiments.db'}"))
    spec = ExperimentSpec.model_validate(
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
    experiments.create(spec)
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
