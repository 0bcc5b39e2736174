"""Real Evidently runs on generated windows: the drifted features are exactly the shifted ones,
the score drift follows, the dataset-drift flag follows the share, quality equals scikit-learn's
on the same rows, a saved report is a complete gzip-compressed HTML page."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mon_fixtures import FEATURES, feature_rows, reference_frame, score
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from monitoring_service import drift
from monitoring_service.drift import DriftConfig, NotEnoughData

COLUMNS = list(FEATURES)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    frame = reference_frame(3000, seed=5)
    return frame.drop(columns=["trip_completed"])


def _window(n: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    frame = feature_rows(n, seed, shift)
    frame["score"] = score(frame)
    return frame


def test_no_drift_on_the_reference_distribution(reference: pd.DataFrame) -> None:
    result, _ = drift.drift_report(_window(1500, 11), reference, COLUMNS, DriftConfig())
    assert set(result.features) == set(COLUMNS)
    assert [n for n, c in result.features.items() if c.drifted] == []
    assert result.drifted_features == 0 and result.drift_share == 0.0
    assert result.dataset_drift is False
    assert result.prediction is not None and result.prediction.drifted is False
    assert result.rows == 1500 and result.reference_rows == 3000
    # Evidently's default above 1000 reference rows: normed Wasserstein, threshold 0.1
    assert {c.method for c in result.features.values()} == {"Wasserstein distance (normed)"}
    assert all(c.score < c.threshold == 0.1 for c in result.features.values())


def test_shifted_features_are_the_drifted_ones(reference: pd.DataFrame) -> None:
    shifted = _window(1500, 12, {"conv_rate": 0.4, "rating": 1.5, "cancel_rate": 0.15})
    result, snapshot = drift.drift_report(shifted, reference, COLUMNS, DriftConfig())
    assert {n for n, c in result.features.items() if c.drifted} == {
        "conv_rate",
        "rating",
        "cancel_rate",
    }
    assert result.drifted_features == 3 and result.drift_share == pytest.approx(0.6)
    assert result.dataset_drift is True  # 0.6 >= 0.5
    # conv_rate and rating push the score up: the score distribution drifts too
    assert result.prediction is not None and result.prediction.drifted is True
    assert result.features["conv_rate"].score > 0.1
    # a stricter share: the same window is not a dataset drift
    strict, _ = drift.drift_report(shifted, reference, COLUMNS, DriftConfig(drift_share=0.8))
    assert strict.dataset_drift is False and strict.drifted_features == 3
    assert snapshot is not None


def test_a_p_value_method_and_its_threshold(reference: pd.DataFrame) -> None:
    shifted = _window(400, 13, {"acc_rate": 0.3})
    result, _ = drift.drift_report(
        shifted, reference, COLUMNS, DriftConfig(method="ks", threshold=0.01)
    )
    assert {n for n, c in result.features.items() if c.drifted} == {"acc_rate"}
    ks = result.features["acc_rate"]
    assert ks.method == "ks" and ks.threshold == 0.01 and ks.score < 0.01
    assert result.features["rating"].score > 0.01  # a p-value: high means no drift


def test_events_json_types_are_aligned_to_the_reference(reference: pd.DataFrame) -> None:
    window = _window(200, 14)
    as_json = window.astype(object)
    as_json.loc[3, "avg_daily_trips"] = None  # a missing value arrives as null
    aligned = drift.align(as_json, reference, COLUMNS)
    assert str(aligned["conv_rate"].dtype) == "float64"
    assert aligned["avg_daily_trips"].isna().sum() == 1
    clean = drift.align(window.astype(object), reference, COLUMNS)
    assert str(clean["avg_daily_trips"].dtype) == "int64"


def test_missing_features_are_reported_not_fatal(reference: pd.DataFrame) -> None:
    window = _window(300, 15).drop(columns=["rating"])
    result, _ = drift.drift_report(window, reference, COLUMNS, DriftConfig())
    assert result.missing_features == ["rating"]
    assert "rating" not in result.features and len(result.features) == 4


def test_too_few_rows(reference: pd.DataFrame) -> None:
    with pytest.raises(NotEnoughData, match="29 rows < MONITORING_MIN_ROWS=30"):
        drift.drift_report(_window(29, 16), reference, COLUMNS, DriftConfig())


def test_quality_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    window = _window(400, 17)
    labelled = pd.DataFrame(
        {
            "score": window["score"],
            "label": (rng.uniform(0, 1, len(window)) < window["score"]).astype(int),
        }
    )
    ref = reference_frame(1000, seed=8)
    baseline = pd.DataFrame({"score": ref["score"], "label": ref["trip_completed"].astype(int)})
    cfg = DriftConfig(probas_threshold=0.4)
    result, _ = drift.quality_report(labelled, baseline, cfg)
    y, p = labelled["label"], labelled["score"]
    predicted = p >= 0.4
    assert result.rows == 400 and result.positives == int(y.sum())
    assert result.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert result.precision == pytest.approx(precision_score(y, predicted))
    assert result.recall == pytest.approx(recall_score(y, predicted))
    assert result.f1 == pytest.approx(f1_score(y, predicted))
    assert result.accuracy == pytest.approx(accuracy_score(y, predicted))
    assert result.probas_threshold == 0.4


def test_quality_needs_labels_and_two_classes() -> None:
    window = _window(50, 18)
    with pytest.raises(NotEnoughData, match="10 labelled rows"):
        drift.quality_report(
            pd.DataFrame({"score": window["score"][:10], "label": 1}), None, DriftConfig()
        )
    one_class = pd.DataFrame({"score": window["score"], "label": 1})
    result, _ = drift.quality_report(one_class, None, DriftConfig())
    assert result.roc_auc is None  # undefined with one class
    share = float((one_class["score"] >= 0.5).mean())
    assert result.precision == 1.0  # every predicted positive is a positive
    assert result.recall == pytest.approx(share) and result.accuracy == pytest.approx(share)


def test_report_is_saved_as_a_complete_html_page(reference: pd.DataFrame, tmp_path: Path) -> None:
    _, snapshot = drift.drift_report(_window(300, 19), reference, COLUMNS, DriftConfig())
    target = tmp_path / "reports" / "7" / "drift.html.gz"
    size = drift.save_html(snapshot, target)
    assert size == target.stat().st_size > 100_000
    html = gzip.decompress(target.read_bytes()).decode()
    assert len(html) > 3 * size  # compresses about 3x
    assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()
    assert "conv_rate" in html and "</html>" in html.lower()
    assert list(target.parent.iterdir()) == [target]  # no temporary left behind
