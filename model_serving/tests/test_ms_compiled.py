"""The vectorised HistGradientBoosting predictor gives exactly scikit-learn's numbers, and
refuses the models it does not handle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from model_serving.compiled import compile_hgb, probe_inputs
from model_serving.models import _sklearn_scorer


def data(n: int = 3000, seed: int = 0, missing: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack(
        [
            rng.uniform(0, 1, n),
            rng.uniform(0, 1, n),
            rng.integers(0, 60, n).astype(float),
            rng.uniform(1, 5, n),
            rng.uniform(0, 0.3, n),
        ]
    )
    logit = 3 * X[:, 0] + X[:, 3] - 3 - 4 * X[:, 4]
    y = rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))
    X[rng.uniform(size=X.shape) < missing] = np.nan
    return X, y


@pytest.mark.parametrize(
    "params",
    [
        # the training pipeline's default estimator
        dict(
            learning_rate=0.05,
            max_iter=200,
            max_leaf_nodes=7,
            min_samples_leaf=100,
            l2_regularization=1.0,
            early_stopping=False,
        ),
        {"max_iter": 60, "max_leaf_nodes": 31},
        {"max_iter": 20, "max_depth": 2},
    ],
    ids=["platform-default", "deep", "stumps"],
)
def test_identical_to_scikit_learn(params: dict[str, Any]) -> None:
    X, y = data()
    model = HistGradientBoostingClassifier(random_state=0, **params).fit(X, y)
    compiled = compile_hgb(model)
    assert compiled is not None
    test, _ = data(n=2000, seed=5)
    for inputs in (test, probe_inputs(compiled), test[:1], np.nan_to_num(test[:5])):
        expected = model.predict_proba(inputs)[:, 1]
        assert np.array_equal(compiled.positive_proba(inputs), expected)


def test_string_labels_and_positive_class() -> None:
    X, y = data()
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, np.where(y, "yes", "no"))
    # the classes are ['no', 'yes']: the caller says which is positive (the model's declared
    # class, see test_ms_trusted), never guessed here
    for positive in (0, 1):
        compiled = compile_hgb(model, positive)
        assert compiled is not None and compiled.positive == positive
        expected = model.predict_proba(X[:50])[:, positive]
        assert np.array_equal(compiled.positive_proba(X[:50]), expected)


def test_refuses_what_it_does_not_handle() -> None:
    X, y = data(missing=0)
    assert compile_hgb(LogisticRegression().fit(X, y)) is None
    multiclass = HistGradientBoostingClassifier(max_iter=5).fit(X, (X[:, 2] // 20).astype(int))
    assert compile_hgb(multiclass) is None
    categorical = X.copy()
    categorical[:, 2] = categorical[:, 2] % 5
    with_categories = HistGradientBoostingClassifier(max_iter=5, categorical_features=[2]).fit(
        categorical, y
    )
    assert compile_hgb(with_categories) is None


def test_the_scorer_uses_it_only_when_enabled_and_identical() -> None:
    X, y = data()
    model = HistGradientBoostingClassifier(max_iter=30).fit(X, y)
    _, kind = _sklearn_scorer(model, 1, compiled=True)
    assert kind == "compiled-hgb"
    _, kind = _sklearn_scorer(model, 1, compiled=False)
    assert kind == "sklearn"
    _, kind = _sklearn_scorer(LogisticRegression().fit(np.nan_to_num(X), y), 1, compiled=True)
    assert kind == "sklearn"
