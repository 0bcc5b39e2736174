"""Registered models for the serving tests and benchmarks, logged as the training pipeline logs
its own: sklearn flavor, ``predict_proba``, skops serialization, a signature."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd


def log_and_register(
    model: Any, frame: pd.DataFrame, tracking_uri: str, experiment: str, name: str, **tags: str
) -> str:
    """Log the fitted ``model`` (signature from ``frame``) in a run of ``experiment``, register
    it as a new version of ``name`` with ``tags``; returns the version."""
    import mlflow
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    trusted = list(sio.get_untrusted_types(data=sio.dumps(model)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        signature = infer_signature(frame.head(5), model.predict_proba(frame.head(5)))
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                pip_requirements=["scikit-learn", "skops"],
                pyfunc_predict_fn="predict_proba",
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=trusted,
            )
    return str(mlflow.register_model(info.model_uri, name, tags=tags).version)
