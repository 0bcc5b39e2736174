"""What a model version may be before it runs in this process: skops only, with the type
allowlist the serving code owns (never the artifact's own trust list); a signature that matches
the estimator (names, order, width, numeric types); a declared or unambiguous positive class.

The versions are saved locally (``mlflow.sklearn.save_model``) into the cache layout
``load_version`` reads; no registry is involved in what is refused.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from ms_fixtures import WritesMarker, training_frame

from model_serving.models import META, ModelLoadError, ModelRefused, load_version


def save(folder: Path, model: Any, frame: pd.DataFrame, **kwargs: Any) -> Path:
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    signature = infer_signature(frame.head(5), model.predict_proba(frame.head(5)))
    if kwargs.get("serialization_format") == "skops":
        kwargs.setdefault("skops_trusted_types", sio.get_untrusted_types(data=sio.dumps(model)))
    mlflow.sklearn.save_model(
        model,
        str(folder / "model"),
        signature=signature,
        pyfunc_predict_fn="predict_proba",
        **kwargs,
    )
    (folder / META).write_text(json.dumps({"name": "ranker", "version": "7", "run_id": "r1"}))
    return folder


def load(folder: Path) -> Any:
    return load_version(folder, alias="champion", source="cache", default_feature_service="svc")


def fitted(kind: str = "hgb", labels: Any = None) -> tuple[Any, pd.DataFrame]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    frame, label = training_frame(n=300)
    model = HistGradientBoostingClassifier(max_iter=10) if kind == "hgb" else LogisticRegression()
    model.fit(frame, label if labels is None else np.where(label, *labels))
    return model, frame


#: what a HistGradientBoosting model holds beyond skops' own safe types
HGB = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def skops(**extra: Any) -> dict[str, Any]:
    import mlflow.sklearn

    return {"serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS, **extra}


def test_a_skops_version_loads(tmp_path: Path) -> None:
    model, frame = fitted()
    loaded = load(save(tmp_path, model, frame, **skops()))
    assert loaded.scorer_kind == "compiled-hgb"
    assert loaded.accepts_missing


@pytest.mark.parametrize("fmt", ["pickle", "cloudpickle"])
def test_a_pickled_version_is_refused_and_never_runs(tmp_path: Path, fmt: str) -> None:
    model, frame = fitted("lr")
    folder = save(tmp_path, model, frame, serialization_format=fmt)
    marker = tmp_path / "marker"
    (folder / "model" / "model.pkl").write_bytes(pickle.dumps(WritesMarker(marker)))
    with pytest.raises(ModelRefused) as refused:
        load(folder)
    assert refused.value.reason == "format"
    assert fmt in str(refused.value)
    assert not marker.exists()


def test_a_pyfunc_version_is_refused_and_never_runs(tmp_path: Path) -> None:
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=Echo())
    (tmp_path / META).write_text(json.dumps({"name": "ranker", "version": "7"}))
    marker = tmp_path / "marker"
    for blob in (tmp_path / "model").glob("*.pkl"):
        blob.write_bytes(pickle.dumps(WritesMarker(marker)))
    with pytest.raises(ModelRefused) as refused:
        load(tmp_path)
    assert refused.value.reason == "format"
    assert not marker.exists()


def test_a_skops_type_outside_the_allowlist_is_refused(tmp_path: Path) -> None:
    """The artifact says it trusts the type; the serving code does not."""
    import operator

    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model, frame = fitted("lr")
    pipeline = make_pipeline(FunctionTransformer(operator.pos), model).fit(
        frame, model.classes_[[0, 1] * 150]
    )
    trusted = list(sio.get_untrusted_types(data=sio.dumps(pipeline)))
    assert trusted
    folder = save(tmp_path, pipeline, frame, **skops(skops_trusted_types=trusted))
    with pytest.raises(ModelRefused) as refused:
        load(folder)
    assert refused.value.reason == "untrusted_type"
    assert "operator.pos" in str(refused.value)


def test_a_signature_in_another_order_is_refused(tmp_path: Path) -> None:
    model, frame = fitted()
    reordered = frame[list(reversed(frame.columns))]
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(reordered.head(5), model.predict_proba(frame.head(5)))
    mlflow.sklearn.save_model(
        model, str(tmp_path / "model"), signature=signature, **skops(skops_trusted_types=HGB)
    )
    (tmp_path / META).write_text(json.dumps({"name": "ranker", "version": "7"}))
    with pytest.raises(ModelRefused) as refused:
        load(tmp_path)
    assert refused.value.reason == "signature"


def test_a_signature_of_another_width_is_refused(tmp_path: Path) -> None:
    model, frame = fitted("lr")
    model.feature_names_in_ = None
    del model.feature_names_in_
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(frame.iloc[:5, :4], model.predict_proba(frame.head(5)))
    mlflow.sklearn.save_model(model, str(tmp_path / "model"), signature=signature, **skops())
    (tmp_path / META).write_text(json.dumps({"name": "ranker", "version": "7"}))
    with pytest.raises(ModelRefused) as refused:
        load(tmp_path)
    assert refused.value.reason == "signature"


def test_string_labels_need_a_declared_positive_class(tmp_path: Path) -> None:
    model, frame = fitted("lr", labels=("yes", "no"))  # classes_ sorted: ["no", "yes"]
    with pytest.raises(ModelRefused) as refused:
        load(save(tmp_path / "a", model, frame, **skops()))
    assert refused.value.reason == "positive_class"
    declared = load(
        save(tmp_path / "b", model, frame, metadata={"positive_class": "no"}, **skops())
    )
    matrix = frame.to_numpy(dtype=np.float64)[:20]
    assert np.array_equal(declared.score(matrix), model.predict_proba(matrix)[:, 0])


def test_an_estimator_that_refuses_nan_is_marked(tmp_path: Path) -> None:
    model, frame = fitted("lr")
    assert not load(save(tmp_path, model, frame, **skops())).accepts_missing


def test_a_refusal_is_a_load_error() -> None:
    assert issubclass(ModelRefused, ModelLoadError)


@pytest.mark.integration
def test_the_cache_follows_the_artifact_not_the_version_number(
    mlflow_server: Any, tmp_path: Path
) -> None:
    """A cached copy whose files changed, or that another run produced, is downloaded again."""
    from mlflow.tracking import MlflowClient
    from ms_fixtures import register_model, unique_name

    from model_serving.models import fetch_version

    name = unique_name("ms_cache")
    version = register_model(mlflow_server.url, name)
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    cache = tmp_path / "cache"
    folder = fetch_version(client, mlflow_server.url, cache, name, version)
    meta = json.loads((folder / META).read_text())
    assert meta["digest"] and meta["run_id"]
    skops_file = folder / "model" / "model.skops"
    original = skops_file.read_bytes()
    skops_file.write_bytes(original + b"tampered")
    fetch_version(client, mlflow_server.url, cache, name, version)
    assert skops_file.read_bytes() == original
    (folder / META).write_text(json.dumps({**meta, "run_id": "another-run"}))
    fetch_version(client, mlflow_server.url, cache, name, version)
    assert json.loads((folder / META).read_text())["run_id"] == meta["run_id"]
