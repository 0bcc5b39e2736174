"""The A/B test's statistics checked by simulation (no services): with two identical arms and
a look every day, the always-valid test's false positive rate stays within its level (a naive
fixed-horizon z-test looked at the same way does not); with the planned lift it detects it at
the planned sample size with the planned power. Then the readout's verdicts and SRM check."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
from scipy.stats import norm

from mlops_common.experiments import Experiment
from monitoring_service.abtest import ArmCounts, msprt_lambda, planned_samples, readout

ALPHA = 0.05
BASELINE = 0.6
LIFT = 0.05
DAYS = 20
RUNS = 1500


def simulate(p_control: float, p_treatment: float, per_day: int, seed: int) -> tuple[float, float]:
    """Share of runs in which the mSPRT (and a naive z-test) rejected at any of the daily looks."""
    rng = np.random.default_rng(seed)
    daily0 = rng.binomial(per_day, p_control, size=(RUNS, DAYS)).cumsum(axis=1)
    daily1 = rng.binomial(per_day, p_treatment, size=(RUNS, DAYS)).cumsum(axis=1)
    z_bound = norm.ppf(1 - ALPHA / 2)
    msprt = naive = 0
    for run in range(RUNS):
        hit = peeked = False
        for day in range(DAYS):
            n = per_day * (day + 1)
            control = ArmCounts("a", n, n, int(daily0[run, day]))
            treatment = ArmCounts("b", n, n, int(daily1[run, day]))
            diff, likelihood = msprt_lambda(control, treatment, LIFT)
            hit = hit or likelihood >= 1 / ALPHA
            p0, p1 = control.completions / n, treatment.completions / n
            pooled = (p0 + p1) / 2
            se = math.sqrt(2 * pooled * (1 - pooled) / n)
            peeked = peeked or abs(diff) / se > z_bound
        msprt += hit
        naive += peeked
    return msprt / RUNS, naive / RUNS


def test_false_positive_rate_with_daily_peeking_stays_within_alpha() -> None:
    fpr, naive = simulate(BASELINE, BASELINE, per_day=200, seed=7)
    tolerance = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)
    assert fpr <= ALPHA + tolerance, fpr
    assert naive > ALPHA + tolerance, naive  # what the correction is for


def test_power_at_the_planned_sample_size_is_the_planned_power() -> None:
    n = planned_samples(BASELINE, LIFT, ALPHA, power=0.8)
    assert 1000 < n < 10_000
    per_day = math.ceil(n / DAYS)
    power, _ = simulate(BASELINE, BASELINE + LIFT, per_day=per_day, seed=11)
    tolerance = 3 * math.sqrt(0.8 * 0.2 / RUNS)
    # the looks before the last add a little power to the final look's planned 80 %
    assert 0.8 - tolerance <= power <= 0.8 + 0.05 + tolerance, power
    assert planned_samples(BASELINE, LIFT / 2, ALPHA) > 3 * n


def experiment(**changes: object) -> Experiment:
    data: dict[str, object] = {
        "name": "ab1",
        "model_name": "m",
        "arms": [
            {"name": "control", "version": "1", "weight": 0.5},
            {"name": "treatment", "version": "2", "weight": 0.5},
        ],
        "min_samples_per_arm": 100,
        "stopping": {"max_samples_per_arm": 5000, "minimum_detectable_effect": 0.05},
        "created_at": datetime.now(UTC),
        "weights": {"control": 0.5, "treatment": 0.5},
        **changes,
    }
    return Experiment.model_validate(data)


def counts(
    n: int, rate0: float, rate1: float, requests: tuple[int, int] | None = None
) -> dict[str, ArmCounts]:
    r0, r1 = requests or (n, n)
    return {
        "control": ArmCounts("control", r0, n, round(n * rate0)),
        "treatment": ArmCounts("treatment", r1, n, round(n * rate1)),
    }


def test_verdicts() -> None:
    assert readout(experiment(), {}).verdict == "running"
    assert readout(experiment(), counts(50, 0.5, 0.9)).verdict == "running"  # below min samples
    won = readout(experiment(), counts(3000, 0.60, 0.66))
    assert (won.verdict, won.arm) == ("winner", "treatment")
    treatment = won.arms[1]
    assert treatment.p_value is not None and treatment.p_value < ALPHA
    assert treatment.ci_low is not None and treatment.ci_low < 0.66 < (treatment.ci_high or 0)
    harmed = readout(experiment(), counts(3000, 0.60, 0.54))
    assert (harmed.verdict, harmed.arm) == ("harmful", "treatment")
    assert readout(experiment(), counts(5000, 0.60, 0.601)).verdict == "no difference"


def test_sample_ratio_mismatch_is_flagged_for_a_fixed_split_only() -> None:
    fine = readout(experiment(), counts(1000, 0.6, 0.6, requests=(10_050, 9_950)))
    assert not fine.srm and fine.srm_p_value is not None and fine.srm_p_value > 0.1
    broken = readout(experiment(), counts(1000, 0.6, 0.6, requests=(10_500, 9_500)))
    assert broken.srm and broken.notes
    bandit = experiment(allocation="thompson")
    assert readout(bandit, counts(1000, 0.6, 0.6, requests=(15_000, 5_000))).srm_p_value is None
