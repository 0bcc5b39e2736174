"""Holdout evaluation: classification, calibration and ranking metrics, importances, plots.

``holdout_metrics`` takes any scorer (a function from feature rows to positive-class
probabilities), so the gate scores the current champion with exactly the code that scored the
candidate, on exactly the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from training_pipeline.settings import DatasetConfig, EvaluationConfig

FloatArray = npt.NDArray[np.float64]
#: feature rows -> probability of the positive class, one per row
Scorer = Callable[[pd.DataFrame], FloatArray]


class EvaluationError(ValueError):
    """The holdout cannot be evaluated (e.g. one class only, or no candidate sets)."""


def sklearn_scorer(model: Any, feature_columns: Sequence[str]) -> Scorer:
    columns = list(feature_columns)

    def score(rows: pd.DataFrame) -> FloatArray:
        proba = np.asarray(model.predict_proba(rows[columns]), dtype=np.float64)
        return positive_column(proba, model)

    return score


def positive_column(proba: Any, model: Any = None) -> FloatArray:
    """The positive-class column of a ``predict_proba`` result (1-d input passes through)."""
    values = np.asarray(proba, dtype=np.float64)
    if values.ndim == 1:
        return values
    if values.ndim != 2 or values.shape[1] != 2:
        raise EvaluationError(f"expected binary probabilities, got shape {values.shape}")
    classes = list(getattr(model, "classes_", [False, True]))
    index = classes.index(True) if True in classes else 1
    return values[:, index]


def reliability_table(y: FloatArray, p: FloatArray, bins: int) -> list[dict[str, float]]:
    """Equal-width probability bins: rows, mean predicted probability and observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        table.append(
            {
                "bin_lower": float(edges[b]),
                "bin_upper": float(edges[b + 1]),
                "count": n,
                "mean_predicted": float(p[mask].mean()) if n else float("nan"),
                "observed_rate": float(y[mask].mean()) if n else float("nan"),
            }
        )
    return table


def expected_calibration_error(table: list[dict[str, float]]) -> float:
    total = sum(row["count"] for row in table)
    return float(
        sum(
            row["count"] * abs(row["observed_rate"] - row["mean_predicted"])
            for row in table
            if row["count"]
        )
        / total
    )


def classification_metrics(
    y_true: Any, p: FloatArray, cfg: EvaluationConfig
) -> tuple[dict[str, float], list[dict[str, float]]]:
    y = np.asarray(y_true, dtype=bool)
    if y.all() or not y.any():
        raise EvaluationError("the holdout has only one class: ROC AUC is undefined")
    if np.isnan(p).any():
        raise EvaluationError("the scorer returned NaN probabilities")
    predicted = p >= cfg.operating_threshold
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, predicted, average="binary", zero_division=0.0
    )
    table = reliability_table(y.astype(np.float64), p, cfg.calibration_bins)
    metrics = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[False, True])),
        "brier_score": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(table),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float((predicted == y).mean()),
    }
    return metrics, table


def ranking_metrics(
    candidates: pd.DataFrame, scores: FloatArray, dataset: DatasetConfig
) -> dict[str, float]:
    """Top-1 accuracy over each event's candidate set (the product metric), with the platform's
    one definition (``mlops_common.metrics.top1_accuracy``, also the example's oracle's)."""
    from mlops_common.metrics import top1_accuracy

    if candidates.empty:
        raise EvaluationError("no candidate sets for the holdout: top-1 accuracy is undefined")
    frame = pd.DataFrame(
        {
            "booking_id": candidates[dataset.event_id_column].to_numpy(),
            "outcome": candidates[dataset.candidate_outcome_column].to_numpy(dtype=bool),
        }
    )
    if dataset.candidate_order_column in candidates.columns:
        frame["position"] = candidates[dataset.candidate_order_column].to_numpy()
    return {
        "top1_accuracy": top1_accuracy(frame, scores, outcome_column="outcome"),
        "random_top1_accuracy": float(frame["outcome"].mean()),
    }


def holdout_candidates(
    test_set: pd.DataFrame, candidates: pd.DataFrame, dataset: DatasetConfig
) -> pd.DataFrame:
    """The candidate rows of the holdout's events."""
    mask = candidates[dataset.event_id_column].isin(test_set[dataset.event_id_column])
    return candidates.loc[mask].reset_index(drop=True)


def holdout_metrics(
    scorer: Scorer,
    test_set: pd.DataFrame,
    candidates: pd.DataFrame,
    dataset: DatasetConfig,
    cfg: EvaluationConfig,
) -> tuple[dict[str, float], list[dict[str, float]], FloatArray]:
    """Every metric of a scorer on the holdout: ``(metrics, reliability table, test scores)``."""
    p = scorer(test_set)
    metrics, table = classification_metrics(test_set[dataset.label_column], p, cfg)
    test_candidates = holdout_candidates(test_set, candidates, dataset)
    metrics.update(ranking_metrics(test_candidates, scorer(test_candidates), dataset))
    metrics["n_test"] = float(len(test_set))
    metrics["n_test_candidates"] = float(len(test_candidates))
    metrics["test_positive_rate"] = float(test_set[dataset.label_column].mean())
    return metrics, table, p


def permutation_importances(
    model: Any,
    test_set: pd.DataFrame,
    feature_columns: Sequence[str],
    label_column: str,
    cfg: EvaluationConfig,
    seed: int,
) -> list[dict[str, float | str]]:
    """Drop in holdout ROC AUC when one feature is shuffled (mean and std over repeats)."""
    from sklearn.inspection import permutation_importance

    rows = test_set
    if cfg.permutation_max_rows and len(rows) > cfg.permutation_max_rows:
        rows = rows.sample(n=cfg.permutation_max_rows, random_state=seed)
    result = permutation_importance(
        model,
        rows[list(feature_columns)],
        rows[label_column].to_numpy(dtype=bool),
        scoring="roc_auc",
        n_repeats=cfg.permutation_repeats,
        random_state=seed,
    )
    table: list[dict[str, float | str]] = [
        {"feature": f, "mean": float(m), "std": float(s)}
        for f, m, s in zip(
            feature_columns, result["importances_mean"], result["importances_std"], strict=True
        )
    ]
    return sorted(table, key=lambda row: -float(row["mean"]))


# --- plots ------------------------------------------------------------------------------------


def _figure(width: float = 5.5, height: float = 4.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_roc(y_true: Any, p: FloatArray, auc: float, path: Path) -> Path:
    fpr, tpr, _ = roc_curve(np.asarray(y_true, dtype=bool), p)
    fig = _figure()
    ax = fig.subplots()
    ax.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (holdout)")
    ax.legend(loc="lower right")
    fig.savefig(path)
    return path


def plot_calibration(table: list[dict[str, float]], brier: float, path: Path) -> Path:
    filled = [row for row in table if row["count"]]
    fig = _figure(5.5, 6.0)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.plot(
        [row["mean_predicted"] for row in filled],
        [row["observed_rate"] for row in filled],
        marker="o",
        label=f"model (Brier {brier:.4f})",
    )
    top.set_ylabel("observed positive rate")
    top.set_title("Calibration (holdout)")
    top.legend(loc="upper left")
    centers = [(row["bin_lower"] + row["bin_upper"]) / 2 for row in table]
    widths = [row["bin_upper"] - row["bin_lower"] for row in table]
    bottom.bar(centers, [row["count"] for row in table], width=widths, edgecolor="black")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("rows")
    fig.savefig(path)
    return path


def plot_importance(importances: list[dict[str, float | str]], path: Path) -> Path:
    ordered = list(reversed(importances))
    fig = _figure(6.0, 0.5 * len(ordered) + 1.5)
    ax = fig.subplots()
    ax.barh(
        [str(row["feature"]) for row in ordered],
        [float(row["mean"]) for row in ordered],
        xerr=[float(row["std"]) for row in ordered],
    )
    ax.set_xlabel("drop in ROC AUC when shuffled")
    ax.set_title("Permutation importance (holdout)")
    fig.savefig(path)
    return path
