"""The promotion gate: absolute bounds AND no regression against the champion on the same holdout.

``decide`` is pure (metrics in, decision out); ``score_champion`` scores the current champion on
the candidate's holdout with the evaluation code that scored the candidate. The step that applies
the decision (modes, alias moves, exit codes) is ``steps.gate``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel

from training_pipeline.evaluation import holdout_metrics, positive_column
from training_pipeline.settings import (
    HIGHER_IS_BETTER,
    DatasetConfig,
    EvaluationConfig,
    GateConfig,
    GateMode,
)

#: exit codes of the ``gate`` command (and of every command: 0 ok, 1 failed, 2 usage)
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
#: the gate refused the candidate (enabled mode): no alias moved
EXIT_REFUSED = 3
#: the gate moved nothing by design (disabled, dry run, already holding the alias)
EXIT_SKIPPED = 4


class GateStatus(StrEnum):
    PROMOTED = "promoted"
    REFUSED = "refused"
    SKIPPED = "skipped"


EXIT_CODES = {
    GateStatus.PROMOTED: EXIT_OK,
    GateStatus.REFUSED: EXIT_REFUSED,
    GateStatus.SKIPPED: EXIT_SKIPPED,
}


class ChampionError(Exception):
    """The champion cannot be scored on the candidate's holdout."""


class GateCheck(BaseModel):
    kind: Literal["minimum", "maximum", "regression", "champion"]
    metric: str
    candidate: float | None
    #: the bound (minimum / maximum) or the champion's value on the same holdout
    reference: float | None
    tolerance: float = 0.0
    passed: bool
    detail: str


class GateDecision(BaseModel):
    passed: bool
    checks: list[GateCheck]
    champion_version: str | None
    champion_metrics: dict[str, float] | None

    @property
    def failures(self) -> list[str]:
        return [c.detail for c in self.checks if not c.passed]

    def summary(self) -> str:
        if self.passed:
            return "; ".join(c.detail for c in self.checks) or "no checks configured"
        return "; ".join(self.failures)


def _bound_check(
    kind: Literal["minimum", "maximum"], metric: str, value: float | None, bound: float
) -> GateCheck:
    """An absolute bound: the candidate's ``metric`` at least (minimum) or at most (maximum)."""
    if kind == "minimum":
        ok = value is not None and value >= bound
        verdict = ">=" if ok else "<"
    else:
        ok = value is not None and value <= bound
        verdict = "<=" if ok else ">"
    return GateCheck(
        kind=kind,
        metric=metric,
        candidate=value,
        reference=bound,
        passed=ok,
        detail=f"{metric} {_fmt(value)} {verdict} {kind} {bound:.4f}",
    )


def _regression_check(
    metric: str,
    tolerance: float,
    value: float | None,
    reference: float | None,
    champion_version: str | None,
) -> GateCheck:
    """The candidate's ``metric`` no worse than the champion's ``reference`` on the same
    holdout, give or take ``tolerance``."""
    if value is None or reference is None:
        ok = False
        detail = (
            f"{metric}: candidate {_fmt(value)}, champion v{champion_version} "
            f"{_fmt(reference)}: cannot compare"
        )
    else:
        higher_is_better = metric in HIGHER_IS_BETTER
        ok = value >= reference - tolerance if higher_is_better else value <= reference + tolerance
        allowed = f"{'-' if higher_is_better else '+'}{tolerance:.4f}"
        detail = (
            f"{'' if ok else 'regression: '}{metric} {value:.4f} vs champion "
            f"v{champion_version} {reference:.4f} ({value - reference:+.4f}, allowed {allowed})"
        )
    return GateCheck(
        kind="regression",
        metric=metric,
        candidate=value,
        reference=reference,
        tolerance=tolerance,
        passed=ok,
        detail=detail,
    )


def _fmt(value: float | None) -> str:
    return "missing" if value is None else f"{value:.4f}"


def decide(
    cfg: GateConfig,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> GateDecision:
    """The gate's verdict on a candidate's holdout metrics.

    ``champion`` holds the champion's metrics on the candidate's holdout (None: there is no
    champion; then only the absolute bounds decide). ``champion_error`` says why an existing
    champion could not be scored: the candidate is refused (it cannot be shown not to regress).
    """
    checks = [
        _bound_check("minimum", metric, candidate.get(metric), bound)
        for metric, bound in sorted(cfg.minimums.items())
    ]
    checks += [
        _bound_check("maximum", metric, candidate.get(metric), bound)
        for metric, bound in sorted(cfg.maximums.items())
    ]
    if champion_error is not None:
        checks.append(
            GateCheck(
                kind="champion",
                metric="-",
                candidate=None,
                reference=None,
                passed=False,
                detail=f"cannot compare with champion v{champion_version}: {champion_error}",
            )
        )
    elif champion is not None:
        checks += [
            _regression_check(
                metric, tolerance, candidate.get(metric), champion.get(metric), champion_version
            )
            for metric, tolerance in sorted(cfg.max_regression.items())
        ]
    return GateDecision(
        passed=all(c.passed for c in checks),
        checks=checks,
        champion_version=champion_version,
        champion_metrics=champion,
    )


class GateOutcome(BaseModel):
    """What the gate step did, and why."""

    status: GateStatus
    mode: GateMode
    model_name: str
    version: str
    #: the alias a pass gives (or gave) the version
    alias: str
    message: str
    decision: GateDecision | None
    promotion_seq: int | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def pyfunc_scorer(model: Any) -> tuple[list[str], Any]:
    """Input columns of a pyfunc model (from its signature) and a positive-class scorer."""
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise ChampionError("the champion has no signature: its input columns are unknown")
    columns = list(schema.input_names())

    def score(rows: pd.DataFrame) -> Any:
        return positive_column(model.predict(rows[columns]))

    return columns, score


def score_champion(
    model_uri: str,
    test_set: pd.DataFrame,
    candidates: pd.DataFrame,
    dataset: DatasetConfig,
    cfg: EvaluationConfig,
) -> dict[str, float]:
    """The champion's holdout metrics on the candidate's test set and candidate sets."""
    import mlflow.pyfunc

    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:
        raise ChampionError(f"cannot load {model_uri}: {exc}") from exc
    columns, score = pyfunc_scorer(model)
    missing = sorted(set(columns) - set(test_set.columns))
    if missing:
        raise ChampionError(
            f"it needs features {missing} that the candidate's holdout does not have "
            "(another feature service?); promote by hand if intended"
        )
    try:
        metrics, _, _ = holdout_metrics(score, test_set, candidates, dataset, cfg)
    except Exception as exc:
        raise ChampionError(f"scoring failed: {type(exc).__name__}: {exc}") from exc
    return metrics
