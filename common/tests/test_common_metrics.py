"""The ranking metrics' one definition (``mlops_common.metrics``): ROC AUC and top-1 accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_common.metrics import roc_auc, top1_accuracy


def test_roc_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    scores = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="both positive and negative"):
        roc_auc([True, True], [0.1, 0.2])
    with pytest.raises(ValueError, match="equal length"):
        roc_auc([True, False], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([True, False], [0.1, np.nan])


def test_top1_accuracy_picks_the_highest_score_per_booking() -> None:
    candidates = pd.DataFrame(
        {
            "booking_id": ["a", "a", "a", "b", "b", "c", "c"],
            "position": [0, 1, 2, 0, 1, 0, 1],
            "completed_if_assigned": [False, True, False, True, False, False, True],
        }
    )
    # a: picks position 1 (True); b: picks position 1 (False); c: tie -> position 0 (False)
    assert top1_accuracy(candidates, [0.1, 0.9, 0.5, 0.2, 0.3, 0.5, 0.5]) == pytest.approx(1 / 3)
    assert top1_accuracy(candidates, pd.Series([0.0, 1, 0, 1, 0, 0, 1], index=range(10, 17))) == 1.0
    with pytest.raises(ValueError, match="7 candidate rows"):
        top1_accuracy(candidates, [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        top1_accuracy(candidates, [np.nan] * 7)
    with pytest.raises(ValueError, match="completed_if_assigned"):
        top1_accuracy(candidates.drop(columns="completed_if_assigned"), [0.0] * 7)
