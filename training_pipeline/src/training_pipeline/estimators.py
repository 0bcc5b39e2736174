"""Building the configured scikit-learn estimator."""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Iterator
from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin

from training_pipeline.settings import EstimatorConfig


class EstimatorConfigError(ValueError):
    """The estimator configuration does not name a usable classifier."""


def build_estimator(cfg: EstimatorConfig) -> Any:
    """A fresh, unfitted classifier: ``cfg.class_path(**cfg.hyperparameters)``, with
    ``random_state=cfg.seed`` when the class takes one (and the config does not set it)."""
    module_name, _, class_name = cfg.class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        raise EstimatorConfigError(f"no class {cfg.class_path!r} in scikit-learn") from None
    if not (
        inspect.isclass(cls) and issubclass(cls, BaseEstimator) and issubclass(cls, ClassifierMixin)
    ):
        raise EstimatorConfigError(f"{cfg.class_path} is not a scikit-learn classifier")
    params = dict(cfg.hyperparameters)
    prototype: Any = cls()
    accepted: dict[str, Any] = prototype.get_params()
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise EstimatorConfigError(
            f"{class_name} has no hyperparameters {unknown} (it takes {sorted(accepted)})"
        )
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = cfg.seed
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise EstimatorConfigError(f"cannot build {class_name}: {exc}") from None


def estimator_params(estimator: Any) -> dict[str, Any]:
    """The estimator's effective parameters (JSON-compatible), for logging."""
    params: dict[str, Any] = estimator.get_params(deep=False)
    return {
        key: value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        for key, value in sorted(params.items())
    }


@contextlib.contextmanager
def compute_threads(threads: int) -> Iterator[None]:
    """Limit OpenMP/BLAS threads to ``threads`` inside the block (0: no limit)."""
    if threads <= 0:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield
