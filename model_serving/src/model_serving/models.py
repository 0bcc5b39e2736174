"""Registered model versions: resolve an alias, download, load, warm up, cache locally.

Loading contract: ``models:/<name>@<alias>`` is resolved with ``MlflowClient``; the version's
artifacts are downloaded into the local model cache (``<MLOPS_DATA_DIR>/serving/model-cache/<name>/
<version>/``) and used from there while it is the registry's artifact: same run id, same source,
same sha256 of its files (``serving.json`` records them). Only a format that runs no code on
load is accepted: the ``sklearn`` flavor in skops format, read by ``skops.io.load`` with
``TRUSTED_SKOPS_TYPES`` (this module's allowlist, never the artifact's own trust list); pickle,
cloudpickle and pyfunc versions are refused (``ModelRefused``) before anything of them is read.
The signature must match the estimator (names, order, width, numeric types); the estimator is
scored with ``predict_proba(X)[:, positive class]`` on a float matrix in signature column order,
the positive class being the one the model's metadata declares (``positive_class``), else 1 or
True of a 0/1 or False/True pair (anything else is refused).

Input columns and their types come from the model's input signature; the feature service from
the version's ``features.service`` tag (set by the training pipeline), else the run's tag of that
name, else the configured default.

``champion.json`` in the cache folder records the last champion that was loaded and warmed:
when the registry is unreachable at start, the service starts from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlops_common.registry import FEATURE_SERVICE_TAG, RegistryUnavailable, is_not_found, short
from model_serving.compiled import compile_hgb, probe_inputs

if TYPE_CHECKING:
    from mlflow.models import Model

log = logging.getLogger("model_serving.models")

# Estimators fitted on DataFrames warn on every call with a plain matrix; this package always
# passes the signature's columns in the signature's order (the warning's concern).
warnings.filterwarnings("ignore", message="X does not have valid feature names")

Source = Literal["registry", "cache"]
Scorer = Callable[[np.ndarray], np.ndarray]

POINTER = "champion.json"
META = "serving.json"
#: signature types that are integers
INTEGER_TYPES = {"long": "int64", "integer": "int32"}
#: the numeric signature types a served model may take
NUMPY_TYPES = {"double": "float64", "float": "float32", "boolean": "bool", **INTEGER_TYPES}


class ModelLoadError(RuntimeError):
    """A model version cannot be served (the message says why)."""


@dataclass(frozen=True)
class LoadedModel:
    """A model version ready to score: immutable, shared by every request that uses it."""

    name: str
    version: str
    alias: str
    flavor: str
    #: what computes the scores: compiled-hgb or sklearn
    scorer_kind: str
    columns: tuple[str, ...]
    column_types: tuple[str, ...]
    feature_service: str
    source: Source
    path: Path
    run_id: str | None
    loaded_at: datetime
    load_seconds: float
    scorer: Scorer = field(repr=False, compare=False)
    #: sha256 of the model's files (the cache's identity of the artifact)
    digest: str = ""
    #: the model scores rows with a missing value (else such rows are left out)
    accepts_missing: bool = True
    #: set when bound to a feature reader: reader feature positions of ``columns``
    positions: tuple[int, ...] = ()
    reader: Any = field(default=None, repr=False, compare=False)

    def score(self, matrix: np.ndarray) -> np.ndarray:
        return self.scorer(matrix)

    def with_alias(self, alias: str) -> LoadedModel:
        return replace(self, alias=alias)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "flavor": self.flavor,
            "scorer": self.scorer_kind,
            "feature_service": self.feature_service,
            "input_columns": list(self.columns),
            "source": self.source,
            "run_id": self.run_id,
            "digest": self.digest,
            "accepts_missing": self.accepts_missing,
            "loaded_at": self.loaded_at.isoformat(),
            "load_seconds": round(self.load_seconds, 3),
            "feature_reader": getattr(self.reader, "kind", None),
        }


# --- the local cache ----------------------------------------------------------------------


def version_dir(cache_dir: Path, name: str, version: str) -> Path:
    return cache_dir / name / str(version)


def artifact_digest(model_dir: Path) -> str:
    """sha256 over the model folder's files (paths and contents)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(model_dir)).encode() + b"\0")
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _cached(target: Path, details: Any) -> bool:
    """The cached copy is this registry version's artifact: same run, same source, files
    unchanged since the download."""
    try:
        meta = json.loads((target / META).read_text())
    except (OSError, ValueError):
        return False
    if not (target / "model" / "MLmodel").is_file():
        return False
    same = meta.get("run_id") == details.run_id and meta.get("source") == details.source
    return bool(same and meta.get("digest") == artifact_digest(target / "model"))


def fetch_version(client: Any, tracking_uri: str, cache_dir: Path, name: str, version: str) -> Path:
    """The version's model folder in the local cache, downloaded when not there yet or when the
    cached copy is not the registry's artifact (another run or source, changed files)."""
    target = version_dir(cache_dir, name, version)
    import mlflow.artifacts

    try:
        details = client.get_model_version(name, version)
    except Exception as exc:
        if is_not_found(exc):
            raise ModelLoadError(f"{name} has no version {version}") from None
        raise RegistryUnavailable(f"{type(exc).__name__}: {short(exc)}") from exc
    if _cached(target, details):
        return target
    tags = dict(details.tags or {})
    feature_service = tags.get(FEATURE_SERVICE_TAG)
    if not feature_service and details.run_id:
        try:
            feature_service = client.get_run(details.run_id).data.tags.get(FEATURE_SERVICE_TAG)
        except Exception:
            feature_service = None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        uri = tracking_uri.strip() or None
        try:
            # the version's artifact location from this client: a models:/ URI would be
            # resolved against MLflow's process-global registry URI instead
            location = client.get_model_version_download_uri(name, version)
            downloaded = mlflow.artifacts.download_artifacts(
                artifact_uri=location,
                dst_path=str(staging / "download"),
                tracking_uri=uri,
                registry_uri=uri,
            )
            Path(downloaded).rename(staging / "model")
        except Exception as exc:
            raise RegistryUnavailable(
                f"downloading {name} v{version}: {type(exc).__name__}: {short(exc)}"
            ) from exc
        if not (staging / "model" / "MLmodel").is_file():
            raise ModelLoadError(f"{name} v{version} has no MLmodel file")
        meta = {
            "name": name,
            "version": str(version),
            "run_id": details.run_id,
            "source": details.source,
            "digest": artifact_digest(staging / "model"),
            "feature_service": feature_service,
            "tags": tags,
            "downloaded_at": datetime.now(UTC).isoformat(),
        }
        (staging / META).write_text(json.dumps(meta, indent=2))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def write_pointer(cache_dir: Path, model: LoadedModel) -> None:
    """Record ``model`` as the last loaded champion (atomic replace)."""
    folder = cache_dir / model.name
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "name": model.name,
        "version": model.version,
        "path": str(model.path),
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    tmp = folder / f".{POINTER}.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(folder / POINTER)


def read_pointer(cache_dir: Path, name: str) -> Path | None:
    """The cached folder of the last champion, when there is a usable one."""
    pointer = cache_dir / name / POINTER
    try:
        data = json.loads(pointer.read_text())
        path = Path(data["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (path / META).is_file() and (path / "model" / "MLmodel").is_file():
        return path
    return None


def prune_cache(cache_dir: Path, name: str, keep: int, protect: set[str]) -> None:
    """Delete all but the ``keep`` newest cached versions (never one in ``protect``)."""
    folder = cache_dir / name
    if not folder.is_dir():
        return
    versions = sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in versions[keep:]:
        if old.name not in protect:
            shutil.rmtree(old, ignore_errors=True)


# --- loading ------------------------------------------------------------------------------


#: the types beyond skops' built-in safe set a served model may contain: owned by this code,
#: never read from the artifact (an artifact's own trust list is what an attacker would write)
TRUSTED_SKOPS_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
    }
)
#: the MLmodel metadata key the training pipeline declares the positive class under
POSITIVE_CLASS = "positive_class"


class ModelRefused(ModelLoadError):
    """A version this service will not run: its format can run code on load, it holds a type
    outside the allowlist, or its signature or classes do not fit the estimator. ``reason`` is
    the metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_format(mlmodel: Model) -> dict[str, Any]:
    """The sklearn flavor's configuration when it is a skops file; else ``ModelRefused``."""
    conf: dict[str, Any] | None = mlmodel.flavors.get("sklearn")
    if conf is None:
        raise ModelRefused(
            "format",
            f"flavors {sorted(mlmodel.flavors)}: only the sklearn flavor in skops format loads "
            "(a pyfunc model runs its own code)",
        )
    fmt = conf.get("serialization_format")
    if fmt != "skops":
        raise ModelRefused(
            "format", f"sklearn flavor serialized as {fmt}: only skops loads (pickle runs code)"
        )
    return conf


def load_skops(model_dir: Path, mlmodel: Model) -> Any:
    """The sklearn flavor's estimator, only from a skops file and only with allowlisted types."""
    import skops.io as sio

    conf = check_format(mlmodel)
    file = (model_dir / str(conf.get("pickled_model", ""))).resolve()
    if not file.is_file() or not file.is_relative_to(model_dir.resolve()):
        raise ModelRefused("format", f"no skops file {conf.get('pickled_model')!r} in the model")
    untrusted = sorted(set(sio.get_untrusted_types(file=file)) - TRUSTED_SKOPS_TYPES)
    if untrusted:
        raise ModelRefused("untrusted_type", f"types outside the allowlist: {untrusted}")
    return sio.load(file, trusted=sorted(TRUSTED_SKOPS_TYPES))


def positive_index(classes: Any, declared: Any = None) -> int:
    """The positive class's column in ``predict_proba``: the declared class, else the one of
    0/1 or False/True; anything else is refused rather than guessed."""
    values = list(classes)
    if len(values) != 2:
        raise ModelRefused("positive_class", f"{len(values)} classes: ranking needs two")
    if declared is not None:
        names = [str(v) for v in values]
        if str(declared) not in names:
            raise ModelRefused(
                "positive_class", f"declared positive class {declared!r} not in {names}"
            )
        return names.index(str(declared))
    if set(values) in ({0, 1}, {False, True}):
        return values.index(1)
    raise ModelRefused(
        "positive_class",
        f"classes {[str(v) for v in values]} and no {POSITIVE_CLASS!r} in the model's metadata",
    )


def check_signature(estimator: Any, columns: tuple[str, ...], types: tuple[str, ...]) -> None:
    """The signature must be the estimator's input: numeric types, same width, same names in
    the same order (scored as a plain matrix, a reordering would silently mix features up)."""
    odd = sorted({t for t in types if t not in NUMPY_TYPES})
    if odd:
        raise ModelRefused("signature", f"non-numeric input types {odd}")
    width = getattr(estimator, "n_features_in_", None)
    if width is not None and int(width) != len(columns):
        raise ModelRefused(
            "signature", f"signature has {len(columns)} columns, the estimator takes {width}"
        )
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and tuple(str(n) for n in names) != columns:
        raise ModelRefused(
            "signature",
            f"signature columns {list(columns)} are not the estimator's {list(names)} "
            "(names and order)",
        )


def _sklearn_scorer(estimator: Any, index: int, *, compiled: bool) -> tuple[Scorer, str]:
    """The estimator's positive-class probability, and which implementation computes it:
    ``compiled-hgb`` (``model_serving.compiled``, only when it reproduces the estimator's own
    numbers exactly on probe inputs) or ``sklearn`` (the estimator's ``predict_proba``)."""
    if not hasattr(estimator, "predict_proba"):
        raise ModelLoadError(f"{type(estimator).__name__} has no predict_proba")
    predict_proba = estimator.predict_proba

    def score(matrix: np.ndarray) -> np.ndarray:
        return np.asarray(predict_proba(matrix)[:, index], dtype=np.float64)

    if compiled:
        fast = compile_hgb(estimator, index)
        if fast is not None:
            probe = probe_inputs(fast)
            if np.array_equal(fast.positive_proba(probe), score(probe)):
                return fast.positive_proba, "compiled-hgb"
            log.warning(
                "compiled predictor differs from %s: using scikit-learn's", type(estimator).__name__
            )
    return score, "sklearn"


def load_version(
    path: Path,
    *,
    alias: str,
    source: Source,
    default_feature_service: str,
    compiled: bool = True,
) -> LoadedModel:
    """Load a cached version folder (``fetch_version``'s result) and warm it up."""
    began = time.perf_counter()
    meta, mlmodel = _read_version(path)
    check_format(mlmodel)  # before anything else: a refused format is never looked into
    schema = mlmodel.get_input_schema()  # type: ignore[no-untyped-call]
    if schema is None or not schema.has_input_names():
        raise ModelLoadError(
            f"{meta['name']} v{meta['version']} has no input signature with column names"
        )
    columns = tuple(schema.input_names())
    types = tuple(str(getattr(t, "name", t)) for t in schema.input_types())
    try:
        scorer, kind = _scorer(mlmodel, path / "model", columns, types, compiled=compiled)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"loading {meta['name']} v{meta['version']}: {type(exc).__name__}: {short(exc)}"
        ) from exc
    loaded = LoadedModel(
        name=str(meta["name"]),
        version=str(meta["version"]),
        alias=alias,
        flavor="sklearn",
        scorer_kind=kind,
        columns=columns,
        column_types=types,
        feature_service=str(meta.get("feature_service") or default_feature_service),
        source=source,
        path=path,
        run_id=meta.get("run_id"),
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
        scorer=scorer,
        digest=str(meta.get("digest") or ""),
    )
    warm_up(loaded)
    return replace(
        loaded, load_seconds=time.perf_counter() - began, accepts_missing=accepts_missing(loaded)
    )


def _read_version(path: Path) -> tuple[dict[str, Any], Model]:
    """The cached version's ``serving.json`` and its ``MLmodel``."""
    from mlflow.models import Model

    try:
        meta = json.loads((path / META).read_text())
        mlmodel = Model.load(str(path / "model" / "MLmodel"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cached model at {path} is unreadable: {exc}") from exc
    return meta, mlmodel


def _scorer(
    mlmodel: Model,
    model_dir: Path,
    columns: tuple[str, ...],
    types: tuple[str, ...],
    *,
    compiled: bool,
) -> tuple[Scorer, str]:
    """(scorer, scorer kind) of the sklearn flavor's estimator, loaded from skops with the
    allowlist, once its signature and positive class are checked."""
    estimator = load_skops(model_dir, mlmodel)
    check_signature(estimator, columns, types)
    declared = (mlmodel.metadata or {}).get(POSITIVE_CLASS)
    index = positive_index(getattr(estimator, "classes_", [0, 1]), declared)
    return _sklearn_scorer(estimator, index, compiled=compiled)


def accepts_missing(model: LoadedModel) -> bool:
    """Whether the model scores a row with a missing value (NaN); rows with one are left out
    of a ranking when it does not."""
    try:
        scores = model.score(np.full((1, len(model.columns)), np.nan))
    except Exception:
        return False
    return bool(np.isfinite(scores).all())


def warm_up(model: LoadedModel, rounds: int = 3) -> None:
    """First calls of a model are slow (lazy initialisation, caches): make them here, off the
    request path, and refuse a model that cannot score a plain matrix of its input width."""
    width = len(model.columns)
    for rows in (1, 5, 1):
        matrix = np.full((rows, width), 0.5, dtype=np.float64)
        for _ in range(rounds):
            try:
                scores = model.score(matrix)
            except Exception as exc:
                raise ModelLoadError(
                    f"{model.name} v{model.version} fails on a {rows}x{width} input: "
                    f"{type(exc).__name__}: {short(exc)}"
                ) from exc
            if scores.shape != (rows,):
                raise ModelLoadError(
                    f"{model.name} v{model.version} returned scores of shape {scores.shape} "
                    f"for {rows} rows"
                )
