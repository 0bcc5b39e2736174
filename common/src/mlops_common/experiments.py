"""Experiments as objects: the one definition of an A/B test or bandit that serving routes by and
monitoring evaluates.

An experiment has a ``name``, the registered model it splits (``model_name``: its *traffic*; at
most one experiment runs per model), two or more ``arms`` (each a model version or a registry
alias of that model), an ``allocation`` (``fixed``: each arm's ``weight``, summing to 1;
``thompson``: Thompson sampling over the arms' completion rates with a ``floor`` share per
arm), the primary metric (``trip_completion_rate``, from feedback), guard metrics with
thresholds, a minimum sample size per arm and a stopping rule (significance level, the minimum
detectable effect the always-valid test is tuned to, a maximum sample size per arm).

Assignment is sticky and deterministic: ``assign`` hashes ``<experiment>:<unit>`` (the request
id, or a caller-given unit id) to a point in [0, 1) and picks the arm whose cumulative weight
covers it. The same unit always gets the same arm while the weights stay put.

No I/O here: the store is ``mlops_common.experiment_store``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Allocation",
    "Arm",
    "Experiment",
    "ExperimentError",
    "ExperimentSpec",
    "ExperimentTag",
    "GuardMetric",
    "Status",
    "StoppingRule",
    "Verdict",
    "assign",
    "unit_point",
]

Allocation = Literal["fixed", "thompson"]
Status = Literal["created", "running", "stopped"]
Verdict = Literal["running", "winner", "no difference", "harmful"]
GuardName = Literal["latency_p99_ms", "error_rate", "unscorable_share"]
#: what the assignment hashed: the request id or a caller-given unit id
AssignmentUnit = Literal["request", "unit"]
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
#: the tolerance of "weights sum to 1"
WEIGHT_TOLERANCE = 1e-6

_strict = ConfigDict(frozen=True, extra="forbid")


class ExperimentError(ValueError):
    """An experiment request that cannot be honoured (the message names the problem)."""


class Arm(BaseModel):
    """One arm: a model version (``version``) or a registry alias (``alias``), exactly one."""

    model_config = _strict

    name: Slug
    version: Annotated[str, Field(pattern=r"^[0-9]+$")] | None = None
    alias: Slug | None = None
    #: share of the traffic under a fixed allocation (ignored by ``thompson``)
    weight: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_reference(self) -> Self:
        if (self.version is None) == (self.alias is None):
            raise ValueError(f"arm {self.name!r}: give exactly one of version or alias")
        return self

    @property
    def reference(self) -> str:
        return f"v{self.version}" if self.version is not None else f"@{self.alias}"


class GuardMetric(BaseModel):
    """A metric that must stay at or below ``threshold`` in every arm."""

    model_config = _strict

    metric: GuardName
    threshold: float = Field(ge=0.0)


class StoppingRule(BaseModel):
    """When the A/B test decides: the always-valid test at level ``alpha`` tuned to
    ``minimum_detectable_effect`` (absolute difference of completion rates), and ``no
    difference`` once every arm has ``max_samples_per_arm`` labelled outcomes without a
    decision."""

    model_config = _strict

    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    minimum_detectable_effect: float = Field(default=0.02, gt=0.0, lt=1.0)
    max_samples_per_arm: int = Field(default=50_000, ge=10)


class ExperimentSpec(BaseModel):
    """What a caller gives to create an experiment."""

    model_config = _strict

    name: Slug
    model_name: Annotated[str, Field(min_length=1, max_length=200)]
    arms: list[Arm] = Field(min_length=2, max_length=10)
    allocation: Allocation = "fixed"
    #: the least share of traffic each arm keeps under ``thompson``
    floor: float = Field(default=0.05, ge=0.0, lt=0.5)
    primary_metric: Literal["trip_completion_rate"] = "trip_completion_rate"
    guards: list[GuardMetric] = []
    #: labelled outcomes each arm needs before any verdict other than ``running``
    min_samples_per_arm: int = Field(default=1000, ge=10)
    stopping: StoppingRule = StoppingRule()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if self.allocation == "fixed":
            total = math.fsum(arm.weight for arm in self.arms)
            if abs(total - 1.0) > WEIGHT_TOLERANCE:
                raise ValueError(
                    f"a fixed allocation's weights must sum to 1, they sum to {total:g}"
                )
        elif self.floor * len(self.arms) >= 1.0:
            raise ValueError(
                f"floor {self.floor:g} for {len(self.arms)} arms leaves nothing to allocate"
            )
        if self.min_samples_per_arm > self.stopping.max_samples_per_arm:
            raise ValueError("min_samples_per_arm is larger than stopping.max_samples_per_arm")
        metrics = [guard.metric for guard in self.guards]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"each guard metric once, got {metrics}")
        return self

    def initial_weights(self) -> dict[str, float]:
        """The allocation at start: the fixed weights, or an even split for a bandit."""
        if self.allocation == "fixed":
            return {arm.name: arm.weight for arm in self.arms}
        return {arm.name: 1.0 / len(self.arms) for arm in self.arms}

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ExperimentError(f"experiment {self.name!r} has no arm {name!r}")


class Experiment(ExperimentSpec):
    """A stored experiment: the spec, its state and its current allocation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Status = "created"
    created_at: datetime
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    #: the current allocation (a bandit's moves with feedback)
    weights: dict[str, float]


class ExperimentTag(BaseModel):
    """What a prediction (and its feedback) event records of the experiment that routed it."""

    model_config = _strict

    experiment: Slug
    arm: Slug
    #: what was hashed: the request id or the caller's unit id
    assignment: AssignmentUnit = "request"


def unit_point(experiment: str, unit: str) -> float:
    """A stable point in [0, 1) per (experiment, unit): blake2b, 8 bytes."""
    digest = hashlib.blake2b(f"{experiment}:{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def assign(
    experiment: str, unit: str, weights: Mapping[str, float] | Sequence[tuple[str, float]]
) -> str:
    """The arm of ``unit``: the first whose cumulative weight exceeds the unit's point (weights
    in the given order, normalised to their sum)."""
    pairs = list(weights.items()) if isinstance(weights, Mapping) else list(weights)
    total = math.fsum(weight for _, weight in pairs)
    if not pairs or total <= 0:
        raise ExperimentError(f"experiment {experiment!r} has no arm with a positive weight")
    point = unit_point(experiment, unit) * total
    cumulative = 0.0
    for name, weight in pairs:
        cumulative += weight
        if point < cumulative:
            return name
    return next(name for name, weight in reversed(pairs) if weight > 0)
