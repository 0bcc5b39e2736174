"""The A/B test's statistics: per arm completion rate with a Wilson interval, the difference of
each arm against the first (the control) with an always-valid test, the sample-ratio-mismatch
check, and the verdict.

- **Interval**: Wilson score interval (``statsmodels.stats.proportion.proportion_confint``).
- **Test**: mixture sequential probability ratio test (mSPRT; Johari, Pekelis, Walsh, "Always
  valid inference", 2017) on the difference of two proportions, normal approximation, with a
  normal mixing distribution N(0, tau^2), tau = the stopping rule's minimum detectable effect.
  The likelihood ratio

      Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * d^2 / (2 V (V + tau^2)))

  (d the observed difference, V its variance) is a nonnegative martingale under "no
  difference", so by Ville's inequality P(Lambda ever >= 1/alpha) <= alpha: people may look every
  day, as often as they like, and the false positive rate stays within alpha. The always-valid
  p-value is min(1, 1/Lambda). With k > 2 arms each comparison runs at alpha / (k - 1)
  (Bonferroni). No maintained Python library implements the mSPRT (statsmodels has group
  sequential boundaries for a fixed number of looks only): ADR "experiments-sequential-test".
- **SRM**: chi-square goodness of fit of the requests per arm to a fixed allocation
  (``scipy.stats.chisquare``); a p-value below 0.001 flags a mismatch (the assignment is broken:
  trust no result). Not computed for a bandit (its allocation moves by design).
- **Verdict**: ``harmful`` when an arm is significantly worse than the control, else ``winner``
  when one is significantly better (both only once every arm has ``min_samples_per_arm``
  labelled outcomes), else ``no difference`` once every arm has ``max_samples_per_arm``, else
  ``running``.

``planned_samples`` is the sample size per arm at which the test reaches a power: the smallest n
for which P(Lambda_n >= 1/alpha) under the lift is at least the power (the final look alone;
earlier looks only add power).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scipy.optimize import brentq
from scipy.stats import chisquare, norm
from statsmodels.stats.proportion import proportion_confint

from mlops_common.experiments import Experiment, Verdict

#: p-value of the chi-square test below which the split is a sample ratio mismatch
SRM_P_VALUE = 0.001


@dataclass(frozen=True)
class ArmCounts:
    arm: str
    requests: int = 0
    outcomes: int = 0
    completions: int = 0


@dataclass(frozen=True)
class ArmReadout:
    arm: str
    requests: int
    outcomes: int
    completions: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    #: against the control (None for the control itself)
    difference: float | None = None
    #: always-valid p-value against the control
    p_value: float | None = None


@dataclass(frozen=True)
class Readout:
    experiment: str
    verdict: Verdict
    arms: list[ArmReadout]
    #: the arm the verdict is about (the winner, the harmful one), if any
    arm: str | None = None
    srm_p_value: float | None = None
    srm: bool = False
    notes: list[str] = field(default_factory=list)


def wilson(completions: int, outcomes: int, alpha: float) -> tuple[float, float]:
    low, high = proportion_confint(completions, outcomes, alpha=alpha, method="wilson")
    return float(low), float(high)


def msprt_lambda(control: ArmCounts, arm: ArmCounts, tau: float) -> tuple[float, float]:
    """(the observed difference arm - control, the mSPRT likelihood ratio Lambda)."""
    n0, n1 = control.outcomes, arm.outcomes
    if n0 == 0 or n1 == 0:
        return 0.0, 0.0
    p0, p1 = control.completions / n0, arm.completions / n1
    variance = p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1
    if variance <= 0:  # all-or-nothing rates: the pooled rate's variance instead
        pooled = (control.completions + arm.completions) / (n0 + n1)
        variance = max(pooled * (1 - pooled) * (1 / n0 + 1 / n1), 1e-12)
    diff = p1 - p0
    tau2 = tau * tau
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + tau2 * diff * diff / (
        2 * variance * (variance + tau2)
    )
    return diff, math.exp(min(log_lambda, 700.0))


def srm_p_value(requests: Sequence[int], weights: Sequence[float]) -> float | None:
    total = sum(requests)
    if total == 0:
        return None
    expected = [total * w / sum(weights) for w in weights]
    if any(e == 0 for e in expected):
        return None
    return float(chisquare(list(requests), expected).pvalue)


def readout(experiment: Experiment, counts: Mapping[str, ArmCounts]) -> Readout:
    """The A/B test's state for the arms' counts (arms with no counts count zero)."""
    stop = experiment.stopping
    arms = [counts.get(a.name, ArmCounts(a.name)) for a in experiment.arms]
    control = arms[0]
    alpha = stop.alpha / max(1, len(arms) - 1)
    readouts = [_arm(control, arm, alpha, stop.minimum_detectable_effect) for arm in arms]
    srm_p = None
    if experiment.allocation == "fixed":
        srm_p = srm_p_value([a.requests for a in arms], [a.weight for a in experiment.arms])
    srm = srm_p is not None and srm_p < SRM_P_VALUE
    verdict, about = _verdict(
        readouts, alpha, experiment.min_samples_per_arm, stop.max_samples_per_arm
    )
    notes = ["sample ratio mismatch: the split is not the allocation"] if srm else []
    return Readout(experiment.name, verdict, readouts, about, srm_p, srm, notes)


def _arm(control: ArmCounts, arm: ArmCounts, alpha: float, tau: float) -> ArmReadout:
    rate = low = high = None
    if arm.outcomes:
        rate = arm.completions / arm.outcomes
        low, high = wilson(arm.completions, arm.outcomes, alpha)
    diff = p_value = None
    if arm is not control and arm.outcomes and control.outcomes:
        diff, likelihood = msprt_lambda(control, arm, tau)
        p_value = 1.0 if likelihood <= 0 else min(1.0, 1.0 / likelihood)
    return ArmReadout(
        arm.arm, arm.requests, arm.outcomes, arm.completions, rate, low, high, diff, p_value
    )


def _verdict(
    arms: list[ArmReadout], alpha: float, min_samples: int, max_samples: int
) -> tuple[Verdict, str | None]:
    if all(a.outcomes >= min_samples for a in arms):
        significant = [a for a in arms[1:] if a.p_value is not None and a.p_value <= alpha]
        harmful = [a for a in significant if (a.difference or 0) < 0]
        if harmful:
            return "harmful", min(harmful, key=lambda a: a.difference or 0).arm
        if significant:
            return "winner", max(significant, key=lambda a: a.difference or 0).arm
    if all(a.outcomes >= max_samples for a in arms):
        return "no difference", None
    return "running", None


def planned_samples(
    baseline: float, lift: float, alpha: float = 0.05, power: float = 0.8, tau: float | None = None
) -> int:
    """Labelled outcomes per arm at which the mSPRT detects ``lift`` (absolute) over
    ``baseline`` with ``power`` (two arms)."""
    tau = lift if tau is None else tau
    p1 = baseline + lift
    if not 0 < baseline < 1 or not 0 < p1 < 1:
        raise ValueError("baseline and baseline + lift must be in (0, 1)")

    def shortfall(n: float) -> float:
        variance = (baseline * (1 - baseline) + p1 * (1 - p1)) / n
        tau2 = tau * tau
        # |d| beyond which Lambda >= 1/alpha
        bound = math.sqrt(
            2
            * variance
            * (variance + tau2)
            / tau2
            * (math.log(1 / alpha) + 0.5 * math.log((variance + tau2) / variance))
        )
        sd = math.sqrt(variance)
        reached = norm.sf((bound - lift) / sd) + norm.cdf((-bound - lift) / sd)
        return float(reached) - power

    high = 10.0
    while shortfall(high) < 0:
        high *= 2
        if high > 1e9:
            raise ValueError("the lift is too small to detect")
    return math.ceil(float(brentq(shortfall, 2.0, high)))
