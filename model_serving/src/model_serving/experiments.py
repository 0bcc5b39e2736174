"""The running experiment of the served model: read from the experiment store, its arms loaded
like the champion, each request routed to its arm (``mlops_common.experiments``).

A background thread reads the store every ``SERVING_EXPERIMENTS_REFRESH_S`` seconds. When an
experiment starts (or its allocation moves, e.g. a bandit's update from monitoring), the thread
resolves each arm (a version, or where an alias points), loads the arms' models (a version
already served as champion or challenger is re-used) and only then replaces ``active``: one
attribute assignment, the same atomic swap as the model lifecycle. An arm that cannot be loaded
leaves the experiment inactive (the champion answers everything) and is retried at the next
read; a store that does not answer leaves what is routed as it was. When the experiment stops,
the next read drops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_common.experiment_store import ExperimentStore
from mlops_common.experiments import (
    Arm,
    Experiment,
    ExperimentError,
    ExperimentSpec,
    ExperimentTag,
    assign,
)
from mlops_common.registry import RegistryUnavailable, alias_version, is_not_found, short
from mlops_common.threads import Periodic
from model_serving.lifecycle import ModelManager
from model_serving.metrics import ServingMetrics
from model_serving.models import LoadedModel

log = logging.getLogger("model_serving.experiments")

#: the alias label of an arm that names a version (its prediction events' ``model.alias``)
VERSION_ARM = "experiment"


@dataclass(frozen=True)
class ActiveExperiment:
    """A running experiment whose arms are all loaded: what a request routes by."""

    experiment: Experiment
    models: dict[str, LoadedModel]
    weights: tuple[tuple[str, float], ...]

    @property
    def name(self) -> str:
        return self.experiment.name

    def route(self, unit: str) -> tuple[ExperimentTag, LoadedModel]:
        arm = assign(self.name, unit, self.weights)
        return ExperimentTag(experiment=self.name, arm=arm), self.models[arm]


def resolve_arm(client: Any, model_name: str, arm: Arm) -> str:
    """The version an arm serves; ``ExperimentError`` naming a version or alias that does not
    exist, ``RegistryUnavailable`` when the registry does not answer."""
    if arm.alias is not None:
        version = alias_version(client, model_name, arm.alias)
        if version is None:
            raise ExperimentError(f"arm {arm.name!r}: {model_name} has no alias {arm.alias!r}")
        return version
    assert arm.version is not None
    try:
        client.get_model_version(model_name, arm.version)
    except Exception as exc:
        if is_not_found(exc):
            raise ExperimentError(
                f"arm {arm.name!r}: {model_name} has no version {arm.version}"
            ) from None
        raise RegistryUnavailable(f"{type(exc).__name__}: {short(exc)}") from exc
    return arm.version


def check_arms(client: Any, spec: ExperimentSpec) -> dict[str, str]:
    """Every arm's version (raises for the first arm that references nothing)."""
    return {arm.name: resolve_arm(client, spec.model_name, arm) for arm in spec.arms}


class ExperimentRouter:
    def __init__(
        self,
        manager: ModelManager,
        metrics: ServingMetrics,
        store: Callable[[], ExperimentStore],
        interval_s: float,
    ) -> None:
        self._manager = manager
        self._metrics = metrics
        self._store_factory = store
        self._store: ExperimentStore | None = None
        self.active: ActiveExperiment | None = None
        self.last_error: str | None = None
        self._watcher = Periodic(self.refresh, interval_s, "experiment-watcher")

    def store(self) -> ExperimentStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def manager_client(self) -> Any:
        """The registry client of the model manager (arms are checked against it)."""
        return self._manager.client()

    def start(self) -> None:
        self.refresh()
        self._watcher.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._watcher.stop(timeout)
        if self._store is not None:
            self._store.close()

    def refresh(self) -> None:
        """Read the running experiment and route by it (see the module's docstring)."""
        try:
            running = self.store().running(self._manager.name)
            self._follow(running)
            self.last_error = None
        except Exception as exc:  # the watcher outlives a store or registry outage
            self.last_error = f"{type(exc).__name__}: {short(exc)}"
            self._metrics.experiment_refresh_errors.inc()
            log.warning("experiments: keeping what is routed: %s", self.last_error)

    def _follow(self, running: Experiment | None) -> None:
        current = self.active
        if running is None:
            if current is not None:
                log.info("experiment %s is no longer running: the champion answers", current.name)
                self._set(None)
            return
        weights = tuple((arm.name, running.weights[arm.name]) for arm in running.arms)
        if current is not None and current.experiment.name == running.name:
            if current.weights != weights:
                self._set(ActiveExperiment(running, current.models, weights))
            return
        models = self._load(running)
        self._set(None if models is None else ActiveExperiment(running, models, weights))

    def _load(self, experiment: Experiment) -> dict[str, LoadedModel] | None:
        versions = check_arms(self._manager.client(), experiment)
        models: dict[str, LoadedModel] = {}
        for arm in experiment.arms:
            model = self._manager.load_arm(versions[arm.name], arm.alias or VERSION_ARM)
            if model is None:
                self._metrics.experiment_refresh_errors.inc()
                log.error(
                    "experiment %s: arm %s not loaded; not routing", experiment.name, arm.name
                )
                return None
            models[arm.name] = model
        return models

    def _set(self, active: ActiveExperiment | None) -> None:
        old = self.active
        self.active = active
        m = self._metrics
        if old is not None:
            for arm, _ in old.weights:
                m.experiment_weight.labels(old.name, arm).set(0)
        if active is not None:
            for arm, weight in active.weights:
                m.experiment_weight.labels(active.name, arm).set(weight)
            log.info("experiment %s routes %s", active.name, dict(active.weights))
        m.experiment_active.set(0 if active is None else 1)
