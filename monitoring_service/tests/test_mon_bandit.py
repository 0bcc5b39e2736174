"""Thompson sampling checked by simulation (no services): reproducible with a seed, the floor
holds, and with feedback applied in delayed batches the regret grows sub-linearly."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring_service.bandit import thompson_allocation

RATES = np.array([0.50, 0.55, 0.60])


def regret_curve(steps: int, batch: int, floor: float, seed: int) -> np.ndarray:
    """Cumulative regret after each batch; the allocation is recomputed once per batch (the
    bounded feedback delay)."""
    rng = np.random.default_rng(seed)
    k = len(RATES)
    wins, outcomes = np.zeros(k, dtype=int), np.zeros(k, dtype=int)
    regret, curve = 0.0, []
    for _ in range(steps // batch):
        shares = thompson_allocation(wins, outcomes, floor, rng, draws=2000)
        arms = rng.choice(k, size=batch, p=shares)
        results = rng.random(batch) < RATES[arms]
        np.add.at(outcomes, arms, 1)
        np.add.at(wins, arms, results)
        regret += float((RATES.max() - RATES[arms]).sum())
        curve.append(regret)
    return np.array(curve)


def test_the_allocation_is_reproducible_and_keeps_the_floor() -> None:
    first = thompson_allocation([50, 80], [100, 100], 0.1, np.random.default_rng(3))
    again = thompson_allocation([50, 80], [100, 100], 0.1, np.random.default_rng(3))
    assert first == again
    assert sum(first) == pytest.approx(1.0)
    assert min(first) >= 0.1 - 1e-9 and first[1] > 0.85
    even = thompson_allocation([0, 0, 0], [0, 0, 0], 0.05, np.random.default_rng(0))
    assert max(abs(s - 1 / 3) for s in even) < 0.03
    with pytest.raises(ValueError, match="floor"):
        thompson_allocation([1, 1], [2, 2], 0.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="between 0"):
        thompson_allocation([3, 1], [2, 2], 0.0, np.random.default_rng(0))


def test_regret_grows_sub_linearly() -> None:
    steps, batch = 30_000, 300
    curves = np.array([regret_curve(steps, batch, 0.0, seed) for seed in range(3)]).mean(axis=0)
    quarter, full = curves[len(curves) // 4 - 1], curves[-1]
    # linear growth would make the last three quarters cost 3x the first quarter
    assert full - quarter < 1.5 * quarter, (quarter, full)
    # uniform allocation's regret over the same steps, for scale
    uniform = steps * float((RATES.max() - RATES).mean())
    assert full < 0.25 * uniform, (full, uniform)


def test_with_a_floor_the_excess_over_the_floors_cost_is_sub_linear() -> None:
    steps, batch, floor = 30_000, 300, 0.05
    curve = np.array([regret_curve(steps, batch, floor, seed) for seed in range(3)]).mean(axis=0)
    floor_cost = floor * float((RATES.max() - RATES).sum()) * batch * np.arange(1, len(curve) + 1)
    excess = curve - floor_cost
    quarter = excess[len(excess) // 4 - 1]
    assert excess[-1] - quarter < 1.5 * quarter, (quarter, excess[-1])
