"""The gate's verdict (pure): absolute bounds, regression against the champion, tolerance."""

from __future__ import annotations

from training_pipeline.gate import decide
from training_pipeline.settings import GateConfig

CFG = GateConfig(
    minimums={"roc_auc": 0.70, "top1_accuracy": 0.80},
    maximums={"log_loss": 0.65},
    max_regression={"roc_auc": 0.005, "top1_accuracy": 0.01, "log_loss": 0.01},
)
GOOD = {"roc_auc": 0.78, "top1_accuracy": 0.90, "log_loss": 0.50}


def test_first_model_passes_on_absolute_bounds_alone() -> None:
    d = decide(CFG, GOOD, None)
    assert d.passed
    assert {c.kind for c in d.checks} == {"minimum", "maximum"}


def test_absolute_minimum_fails() -> None:
    d = decide(CFG, {**GOOD, "roc_auc": 0.69}, None)
    assert not d.passed
    assert d.failures == ["roc_auc 0.6900 < minimum 0.7000"]


def test_absolute_maximum_fails() -> None:
    d = decide(CFG, {**GOOD, "log_loss": 0.70}, None)
    assert not d.passed
    assert "log_loss 0.7000 > maximum 0.6500" in d.failures


def test_missing_metric_fails() -> None:
    d = decide(CFG, {"roc_auc": 0.8, "log_loss": 0.5}, None)
    assert not d.passed
    assert any("top1_accuracy missing" in f for f in d.failures)


def test_regression_beyond_tolerance_fails() -> None:
    champion = {**GOOD, "roc_auc": 0.79}
    d = decide(CFG, GOOD, champion, "3")
    assert not d.passed
    assert len(d.failures) == 1
    assert d.failures[0].startswith("regression: roc_auc 0.7800 vs champion v3 0.7900")


def test_regression_within_tolerance_passes() -> None:
    champion = {"roc_auc": 0.784, "top1_accuracy": 0.909, "log_loss": 0.495}
    d = decide(CFG, GOOD, champion, "3")
    assert d.passed, d.failures
    assert sum(c.kind == "regression" for c in d.checks) == 3


def test_tolerance_boundary_and_lower_is_better() -> None:
    # exactly at the tolerance passes; log loss worse by more than its tolerance fails
    champion = {"roc_auc": 0.785, "top1_accuracy": 0.91, "log_loss": 0.489}
    d = decide(CFG, GOOD, champion, "3")
    assert not d.passed
    assert [c.metric for c in d.checks if not c.passed] == ["log_loss"]


def test_an_existing_champion_that_cannot_be_scored_refuses() -> None:
    d = decide(CFG, GOOD, None, "3", champion_error="needs features ['x']")
    assert not d.passed
    assert "cannot compare with champion v3" in d.failures[0]


def test_improvement_passes_and_the_summary_lists_checks() -> None:
    d = decide(CFG, GOOD, {"roc_auc": 0.70, "top1_accuracy": 0.85, "log_loss": 0.6}, "1")
    assert d.passed
    assert "roc_auc 0.7800 vs champion v1 0.7000 (+0.0800" in d.summary()
