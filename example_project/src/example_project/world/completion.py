"""The true completion model of the example world.

For a booking made at time ``t`` and a candidate driver ``d``, the probability that ``d``
completes the trip if assigned is

    p = sigmoid(b + w · z + w_int · z_acc · z_rating + w_fat · max(0, z_trips - 1)^2)

where ``z`` are the driver's hourly statistics *as of t* — the row of ``driver_hourly_stats`` with
the latest ``event_timestamp <= t`` (every driver has a row at every whole hour, so that is the row
of the booking's hour) — standardised with fixed constants:

    z_conv   = (conv_rate - 0.5) / 0.2
    z_acc    = (acc_rate - 0.75) / 0.12
    z_trips  = (ln(1 + avg_daily_trips) - ln(13)) / 0.5
    z_rating = (rating - 4.5) / 0.3
    z_cancel = (cancel_rate - 0.08) / 0.05

These are exactly the values a point-in-time feature join returns to a model, so a model that
learns this function reaches the oracle. Two terms are not linear in the features: an interaction
(drivers who both accept a lot and are well rated complete disproportionately often) and a fatigue
penalty for drivers far above the usual daily trip count. A linear model gets most of the signal;
a gradient-boosted model can pick up the rest.

Weights (see ``NORMAL_WEIGHTS`` and ``CONCEPT_DRIFT_WEIGHTS``) are chosen so that the oracle ROC
AUC is about 0.8 and the base completion rate about 0.7; ``docs/example_data.md`` lists the
measured numbers. In the ``concept_drift`` scenario, bookings at or after ``drift_start`` follow
``CONCEPT_DRIFT_WEIGHTS``: the effect of ``avg_daily_trips`` flips (busy drivers now complete
*less*), ``conv_rate`` matters much less and ``cancel_rate`` much more.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from example_project.world.config import Scenario
from mlops_common.events.driver_stats import FEATURES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONCEPT_DRIFT_WEIGHTS",
    "FEATURES",
    "NORMAL_WEIGHTS",
    "CompletionWeights",
    "completion_logit",
    "completion_probability",
    "sigmoid",
    "weights_at",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CompletionWeights:
    """Coefficients of the true completion model on standardised features."""

    bias: float
    conv_rate: float
    acc_rate: float
    avg_daily_trips: float
    rating: float
    cancel_rate: float
    acc_x_rating: float
    fatigue: float


NORMAL_WEIGHTS = CompletionWeights(
    bias=1.15,
    conv_rate=0.55,
    acc_rate=0.45,
    avg_daily_trips=0.35,
    rating=0.35,
    cancel_rate=-0.55,
    acc_x_rating=0.3,
    fatigue=-0.5,
)

#: concept drift: conversion, busy days and cancellations weigh differently than before
CONCEPT_DRIFT_WEIGHTS = replace(
    NORMAL_WEIGHTS, conv_rate=0.1, avg_daily_trips=-0.7, cancel_rate=-1.0
)


def weights_at(scenario: str, drift_start: datetime | None, at: datetime) -> CompletionWeights:
    """The true model's weights for a booking at ``at`` in ``scenario``."""
    if scenario == Scenario.CONCEPT_DRIFT.value and drift_start is not None and at >= drift_start:
        return CONCEPT_DRIFT_WEIGHTS
    return NORMAL_WEIGHTS


def sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def standardise(features: pd.DataFrame) -> dict[str, FloatArray]:
    """The standardised features ``z`` of the model (fixed constants, not fitted on data)."""

    def col(name: str) -> FloatArray:
        return features[name].to_numpy(dtype=np.float64)

    return {
        "conv_rate": (col("conv_rate") - 0.5) / 0.2,
        "acc_rate": (col("acc_rate") - 0.75) / 0.12,
        "avg_daily_trips": (np.log1p(col("avg_daily_trips")) - np.log(13.0)) / 0.5,
        "rating": (col("rating") - 4.5) / 0.3,
        "cancel_rate": (col("cancel_rate") - 0.08) / 0.05,
    }


def completion_logit(features: pd.DataFrame, weights: CompletionWeights) -> FloatArray:
    """The logit of the completion probability for rows holding the columns in ``FEATURES``."""
    z = standardise(features)
    logit = (
        weights.bias
        + weights.conv_rate * z["conv_rate"]
        + weights.acc_rate * z["acc_rate"]
        + weights.avg_daily_trips * z["avg_daily_trips"]
        + weights.rating * z["rating"]
        + weights.cancel_rate * z["cancel_rate"]
        + weights.acc_x_rating * z["acc_rate"] * z["rating"]
        + weights.fatigue * np.maximum(0.0, z["avg_daily_trips"] - 1.0) ** 2
    )
    return np.asarray(logit, dtype=np.float64)


def completion_probability(features: pd.DataFrame, weights: CompletionWeights) -> FloatArray:
    """The true probability that a driver with these (as-of) features completes the trip."""
    return sigmoid(completion_logit(features, weights))
