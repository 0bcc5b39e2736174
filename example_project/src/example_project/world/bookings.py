"""Bookings and their candidate sets: the historical dispatcher and the labels of the true model.

Per hour, ``bookings_per_hour`` bookings at sorted random seconds of the hour; each gets
``candidates_per_booking`` distinct drivers drawn uniformly and listed in random order, one of them
assigned uniformly at random. Every candidate's outcome is drawn from the true completion model
(``completion.py``) on its statistics of the booking's hour; the assigned candidate's outcome is
the booking's label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from example_project.world.completion import (
    CONCEPT_DRIFT_WEIGHTS,
    FEATURES,
    NORMAL_WEIGHTS,
    FloatArray,
    completion_probability,
)
from example_project.world.config import DRIVER_ID_OFFSET, ExampleSourceConfig, Scenario
from example_project.world.drivers import STREAM_BOOKINGS, IntArray, seeded_rng
from example_project.world.hourly import SECONDS_PER_HOUR, seconds_to_ts
from mlops_common.sources import BOOKING_CANDIDATES, BOOKINGS, SCHEMAS


@dataclass(frozen=True)
class _Draws:
    """Per hour, booking and candidate: the dispatcher's draws and the candidates' features."""

    candidates: IntArray  # driver rows, (hours, bookings, k)
    offsets: IntArray  # seconds into the hour, (hours, bookings)
    uniforms: FloatArray  # outcome draws, (hours, bookings, k)
    assigned: IntArray  # position of the assigned candidate, (hours, bookings)
    features: dict[str, FloatArray]  # (hours, bookings, k) each


def _draw(
    config: ExampleSourceConfig, hours: IntArray, hour_feats: list[dict[str, FloatArray]]
) -> _Draws:
    n_b, k, n = config.bookings_per_hour, config.candidates_per_booking, config.n_drivers
    shape = (len(hours), n_b, k)
    cand = np.empty(shape, np.int64)
    offsets = np.empty(shape[:2], np.int64)
    uniforms = np.empty(shape, np.float64)
    assigned = np.empty(shape[:2], np.int64)
    feats = {name: np.empty(shape, np.float64) for name in FEATURES}
    for i, hour in enumerate(hours):
        rng = seeded_rng(config.seed, STREAM_BOOKINGS, int(hour))
        offsets[i] = np.sort(rng.integers(1, SECONDS_PER_HOUR, size=n_b))
        keys = rng.random((n_b, n))
        if k < n:
            chosen = np.argpartition(keys, k - 1, axis=1)[:, :k]
        else:
            chosen = np.tile(np.arange(n), (n_b, 1))
        order = np.argsort(np.take_along_axis(keys, chosen, axis=1), axis=1)
        cand[i] = np.take_along_axis(chosen, order, axis=1)
        uniforms[i] = rng.random((n_b, k))
        assigned[i] = rng.integers(0, k, size=n_b)
        for name in FEATURES:
            feats[name][i] = hour_feats[i][name][cand[i]]
    return _Draws(cand, offsets, uniforms, assigned, feats)


def _true_p(config: ExampleSourceConfig, draws: _Draws, ts_s: IntArray) -> FloatArray:
    """Every candidate's completion probability under the scenario's weights at its time."""
    frame = pd.DataFrame({name: draws.features[name].reshape(-1) for name in FEATURES})
    p = completion_probability(frame, NORMAL_WEIGHTS)
    if config.scenario == Scenario.CONCEPT_DRIFT and config.drift_start is not None:
        drift_s = int(config.drift_start.timestamp())
        p_drift = completion_probability(frame, CONCEPT_DRIFT_WEIGHTS)
        p = np.where(ts_s >= drift_s, p_drift, p)
    return p


def _booking_ids(config: ExampleSourceConfig, hours: IntArray) -> npt.NDArray[np.object_]:
    labels = [f"{pd.Timestamp(int(h) * SECONDS_PER_HOUR, unit='s'):%Y%m%d%H}" for h in hours]
    return np.array(
        [
            f"bk-{config.seed}-{label}-{j:05d}"
            for label in labels
            for j in range(config.bookings_per_hour)
        ],
        dtype=object,
    )


def bookings_and_candidates(
    config: ExampleSourceConfig, hours: IntArray, hour_feats: list[dict[str, FloatArray]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``bookings`` and ``booking_candidates`` rows of ``hours`` (statistics ``hour_feats``)."""
    k = config.candidates_per_booking
    draws = _draw(config, hours, hour_feats)
    ts_s = np.repeat((hours[:, None] * SECONDS_PER_HOUR + draws.offsets).reshape(-1), k)
    p = _true_p(config, draws, ts_s)
    positions = np.tile(np.arange(k, dtype=np.int64), len(hours) * config.bookings_per_hour)
    candidates = SCHEMAS[BOOKING_CANDIDATES].conform(
        pd.DataFrame(
            {
                "booking_id": np.repeat(_booking_ids(config, hours), k),
                "event_timestamp": seconds_to_ts(ts_s),
                "driver_id": draws.candidates.reshape(-1) + DRIVER_ID_OFFSET,
                "position": positions,
                "is_assigned": positions == np.repeat(draws.assigned.reshape(-1), k),
                "true_p": p,
                "completed_if_assigned": draws.uniforms.reshape(-1) < p,
            }
        )
    )
    chosen = candidates[candidates["is_assigned"]]
    bookings = SCHEMAS[BOOKINGS].conform(
        pd.DataFrame(
            {
                "booking_id": chosen["booking_id"].to_numpy(),
                "event_timestamp": chosen["event_timestamp"].to_numpy(),
                "driver_id": chosen["driver_id"].to_numpy(),
                "trip_completed": chosen["completed_if_assigned"].to_numpy(),
                "true_p": chosen["true_p"].to_numpy(),
            }
        )
    )
    return bookings, candidates
