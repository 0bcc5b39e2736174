"""Thompson sampling over the arms of a ``thompson`` experiment (Beta-Bernoulli on the trip
completion rate).

Each arm's completion rate has the posterior Beta(1 + completions, 1 + failures) (a uniform
prior). An arm's share of the traffic is the posterior probability that it is the best arm,
estimated from ``draws`` joint samples (``numpy.random.Generator.beta``: seedable, so an
allocation is reproducible), then mixed with the floor: every arm keeps ``floor`` of the traffic
(so a wrongly written-off arm can still recover and the A/B readout keeps data on it), the rest
is split by the posterior:

    share(arm) = floor + (1 - k * floor) * P(arm is best)

Serving routes by the allocation it reads from the experiment store; monitoring writes a new one
every ``MONITORING_EXPERIMENTS_INTERVAL_S`` seconds from the labelled outcomes it has applied,
so feedback reaches the allocation with a delay bounded by that interval plus serving's
``SERVING_EXPERIMENTS_REFRESH_S``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DRAWS = 10_000


def thompson_allocation(
    completions: Sequence[int],
    outcomes: Sequence[int],
    floor: float,
    rng: np.random.Generator,
    draws: int = DRAWS,
) -> list[float]:
    """Each arm's share of the traffic (summing to 1), in the arms' order."""
    wins = np.asarray(completions, dtype=float)
    losses = np.asarray(outcomes, dtype=float) - wins
    if wins.shape != losses.shape or wins.ndim != 1 or len(wins) < 2:
        raise ValueError("one count of completions and of outcomes per arm, at least two arms")
    if (wins < 0).any() or (losses < 0).any():
        raise ValueError("completions must be between 0 and the outcomes of each arm")
    k = len(wins)
    if not 0 <= floor * k < 1:
        raise ValueError(f"floor {floor:g} for {k} arms leaves nothing to allocate")
    samples = rng.beta(1.0 + wins, 1.0 + losses, size=(draws, k))
    best = np.bincount(samples.argmax(axis=1), minlength=k) / draws
    shares = floor + (1.0 - k * floor) * best
    return [float(s) for s in shares / shares.sum()]
