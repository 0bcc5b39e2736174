"""The running experiments, read out: every ``MONITORING_EXPERIMENTS_INTERVAL_S`` seconds, for
each running experiment of the experiment store (``mlops_common.experiment_store``), the arms'
counts from this service's state (requests from prediction events, labelled outcomes from
feedback events, both carrying the experiment and arm) go through the A/B statistics
(``monitoring_service.abtest``) into the ``monitoring_experiment_*`` gauges; for a ``thompson``
experiment the Thompson-sampling allocation (``monitoring_service.bandit``) is written back to
the store, where serving picks it up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from mlops_common.experiment_store import ExperimentStore
from mlops_common.experiments import Experiment
from mlops_common.threads import Periodic
from monitoring_service.abtest import ArmCounts, Readout, readout
from monitoring_service.bandit import thompson_allocation
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.store import Store

log = logging.getLogger("monitoring_service.experiments")

VERDICTS = ("running", "winner", "no difference", "harmful")


def arm_counts(store: Store, experiment: Experiment) -> dict[str, ArmCounts]:
    """The counts of the experiment's arms (events naming an arm it does not have are left
    out of the readout)."""
    found = store.experiment_arms(experiment.name)
    names = {arm.name for arm in experiment.arms}
    return {arm: ArmCounts(arm, *counts) for arm, counts in found.items() if arm in names}


class ExperimentReadouts:
    def __init__(
        self,
        store: Store,
        experiments: Callable[[], ExperimentStore],
        metrics: MonitoringMetrics,
        interval_s: float,
        seed: int | None = None,
    ) -> None:
        self._store = store
        self._factory = experiments
        self._experiments: ExperimentStore | None = None
        self._metrics = metrics
        self._rng = np.random.default_rng(seed)
        self._readouts = Periodic(self.tick, interval_s, "experiment-readouts")
        self.last: dict[str, Readout] = {}

    def experiment_store(self) -> ExperimentStore:
        if self._experiments is None:
            self._experiments = self._factory()
        return self._experiments

    def start(self) -> None:
        self._readouts.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._readouts.stop(timeout)
        if self._experiments is not None:
            self._experiments.close()

    def tick(self) -> dict[str, Readout]:
        """Read out every running experiment (and update the bandits' allocations)."""
        try:
            running = [e for e in self.experiment_store().list() if e.status == "running"]
            for experiment in running:
                self.last[experiment.name] = self.read(experiment)
        except Exception as exc:  # the worker outlives a store outage
            log.debug("readout", exc_info=True)
            self._metrics.experiment_errors.inc()
            log.warning("experiment readout failed: %s: %s", type(exc).__name__, exc)
        return self.last

    def read(self, experiment: Experiment) -> Readout:
        counts = arm_counts(self._store, experiment)
        result = readout(experiment, counts)
        self.export(result)
        if experiment.allocation == "thompson":
            self.reallocate(experiment, counts)
        return result

    def reallocate(self, experiment: Experiment, counts: dict[str, ArmCounts]) -> dict[str, float]:
        arms = [counts.get(a.name, ArmCounts(a.name)) for a in experiment.arms]
        shares = thompson_allocation(
            [a.completions for a in arms], [a.outcomes for a in arms], experiment.floor, self._rng
        )
        weights = {a.arm: share for a, share in zip(arms, shares, strict=True)}
        self.experiment_store().set_weights(experiment.name, weights)
        for arm, share in weights.items():
            self._metrics.experiment_allocation.labels(experiment.name, arm).set(share)
        return weights

    def export(self, result: Readout) -> None:
        m, name = self._metrics, result.experiment
        for arm in result.arms:
            m.experiment_requests.labels(name, arm.arm).set(arm.requests)
            m.experiment_outcomes.labels(name, arm.arm).set(arm.outcomes)
            bounds = {"estimate": arm.rate, "low": arm.ci_low, "high": arm.ci_high}
            for bound, value in bounds.items():
                if value is not None:
                    m.experiment_rate.labels(name, arm.arm, bound).set(value)
            if arm.p_value is not None:
                m.experiment_p_value.labels(name, arm.arm).set(arm.p_value)
                m.experiment_difference.labels(name, arm.arm).set(arm.difference or 0.0)
        for verdict in VERDICTS:
            m.experiment_verdict.labels(name, verdict).set(1 if verdict == result.verdict else 0)
        m.experiment_srm.labels(name).set(1 if result.srm else 0)
