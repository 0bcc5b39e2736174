"""The pipeline's steps. Each reads from and writes to one run folder (``rundir.RunDir``).

build_training_set → validate → train → evaluate → register → gate. The CLI sub-commands and the
DAG's tasks call exactly these functions.
"""

from __future__ import annotations

import json
import pickle
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from training_pipeline.dataset import (
    FeatureSource,
    LabelSource,
    assemble_training_set,
    content_hash,
)
from training_pipeline.estimators import compute_threads
from training_pipeline.evaluation import (
    holdout_candidates,
    holdout_metrics,
    permutation_importances,
    plot_calibration,
    plot_importance,
    plot_roc,
    sklearn_scorer,
)
from training_pipeline.gate import (
    ChampionError,
    GateDecision,
    GateOutcome,
    GateStatus,
    decide,
    score_champion,
)
from training_pipeline.rundir import RunDir
from training_pipeline.settings import (
    CHAMPION,
    GateMode,
    TrainingSettings,
    load_settings,
)
from training_pipeline.split import SplitError, time_split
from training_pipeline.validation import ValidationFailed, ValidationReport, validate_training_set

#: metrics of the evaluation that go to MLflow as run metrics (the rest stay in evaluation.json)
LOGGED_METRICS: tuple[str, ...] = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier_score",
    "ece",
    "precision",
    "recall",
    "f1",
    "accuracy",
    "top1_accuracy",
    "random_top1_accuracy",
    "train_roc_auc",
    "test_positive_rate",
    "n_test",
    "n_test_candidates",
)


def _settings(run_dir: RunDir, settings: TrainingSettings | None) -> TrainingSettings:
    return run_dir.settings(settings or load_settings())


def _elapsed(began: float) -> float:
    return round(time.perf_counter() - began, 3)


# --- build-training-set -------------------------------------------------------------------------


def _holdout_cutoff(labelled: pd.DataFrame, settings: TrainingSettings) -> pd.Timestamp | None:
    """Where ``train`` will cut the holdout (same function, same timestamps), or None when the
    window cannot be split (validation and train then say why)."""
    ts = settings.dataset.timestamp_column
    if ts not in labelled.columns:
        return None
    frame = pd.DataFrame({ts: pd.to_datetime(labelled[ts], utc=True)})
    try:
        return time_split(frame, ts, settings.split).cutoff
    except SplitError:
        return None


def build_training_set(
    run_dir: Path,
    settings: TrainingSettings | None = None,
    *,
    labels: LabelSource | None = None,
    features: FeatureSource | None = None,
    trigger: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Labelled events of the window with point-in-time features → ``training_set.parquet``,
    their candidate sets → ``candidates.parquet``, a manifest with content hashes.

    Freezes the run configuration into the run folder (later steps use it). Default sources:
    the example source for labels, Feast's feature service for features (``training_set.py``).
    """
    began = time.perf_counter()
    settings = settings or load_settings()
    rd = RunDir.create(run_dir)
    rd.freeze_settings(settings)
    if trigger:
        rd.write_json(RunDir.TRIGGER, trigger)
    cfg = settings.dataset
    start, end = (pd.Timestamp(t) for t in settings.window.resolve())
    if labels is None:
        from training_pipeline.training_set import SourceLabels

        labels = SourceLabels()
    if features is None:
        from training_pipeline.training_set import feast_feature_source

        features = feast_feature_source(cfg.feature_service, settings)
    labelled = labels.labelled_events(start, end)
    # candidate sets serve the holdout evaluation only: fetch features for the holdout's
    # candidates, not the whole window's (Feast's file store takes ~0.45 s per 1000 rows)
    cutoff = _holdout_cutoff(labelled, settings)
    candidates = labels.candidates(start, end)
    if cutoff is None:
        candidates = candidates.iloc[0:0]
    else:
        holdout = labelled.loc[
            pd.to_datetime(labelled[cfg.timestamp_column], utc=True) >= cutoff,
            cfg.event_id_column,
        ]
        candidates = candidates[candidates[cfg.event_id_column].isin(holdout)]
    assembled = assemble_training_set(labelled, candidates, features, cfg)
    training, cands = assembled.training_set, assembled.candidates
    rd.write_parquet(RunDir.TRAINING_SET, training)
    rd.write_parquet(RunDir.CANDIDATES, cands)
    manifest = {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "n_rows": len(training),
        "n_candidates": len(cands),
        "positive_rate": float(training[cfg.label_column].mean()) if len(training) else None,
        "training_set_hash": content_hash(training, [cfg.event_id_column]),
        "candidates_hash": content_hash(cands, [cfg.event_id_column, cfg.entity_column]),
        "feature_service": features.feature_service,
        "feature_refs": features.feature_refs,
        "feature_columns": assembled.feature_columns,
        "feature_dtypes": {c: str(training[c].dtype) for c in assembled.feature_columns},
        "label_column": cfg.label_column,
        "holdout_cutoff": None if cutoff is None else cutoff.isoformat(),
        "candidates_scope": "holdout",
        "duration_s": _elapsed(began),
    }
    rd.write_json(RunDir.MANIFEST, manifest)
    return manifest


# --- validate ---------------------------------------------------------------------------------


def validate(run_dir: Path, settings: TrainingSettings | None = None) -> ValidationReport:
    """Validate the training set; raise ``ValidationFailed`` (after writing the report)."""
    began = time.perf_counter()
    rd = RunDir.existing(run_dir)
    settings = _settings(rd, settings)
    manifest = rd.read_json(RunDir.MANIFEST, "build-training-set")
    training = rd.read_parquet(RunDir.TRAINING_SET, "build-training-set")
    candidates = rd.read_parquet(RunDir.CANDIDATES, "build-training-set")
    window = (pd.Timestamp(manifest["window_start"]), pd.Timestamp(manifest["window_end"]))
    cutoff = manifest.get("holdout_cutoff")
    report = validate_training_set(
        training,
        candidates,
        manifest["feature_columns"],
        settings.dataset,
        settings.validation,
        window,
        candidates_from=None if cutoff is None else pd.Timestamp(cutoff),
    )
    rd.write_json(RunDir.VALIDATION, {**report.model_dump(), "duration_s": _elapsed(began)})
    if not report.passed:
        raise ValidationFailed(report.reasons)
    return report


# --- train ------------------------------------------------------------------------------------


def train(run_dir: Path, settings: TrainingSettings | None = None) -> dict[str, Any]:
    """Time-based split, fit the configured estimator on the past, keep the recent slice."""
    from sklearn.metrics import roc_auc_score

    from training_pipeline.estimators import build_estimator, estimator_params

    began = time.perf_counter()
    rd = RunDir.existing(run_dir)
    settings = _settings(rd, settings)
    validation = rd.read_json(RunDir.VALIDATION, "validate")
    if not validation.get("passed"):
        raise ValidationFailed(validation.get("reasons") or ["validation did not pass"])
    manifest = rd.read_json(RunDir.MANIFEST, "build-training-set")
    training = rd.read_parquet(RunDir.TRAINING_SET, "build-training-set")
    cfg = settings.dataset
    columns: list[str] = manifest["feature_columns"]
    forbidden = sorted(set(columns) & set(cfg.forbidden_feature_columns))
    if forbidden:
        raise ValueError(f"refusing to train on ground-truth columns {forbidden}")
    split = time_split(training, cfg.timestamp_column, settings.split)
    expected = manifest.get("holdout_cutoff")
    if expected is not None and pd.Timestamp(expected) != split.cutoff:
        raise ValueError(
            f"holdout cutoff {split.cutoff.isoformat()} differs from the one the training set "
            f"was built for ({expected}): rebuild the training set"
        )
    estimator = build_estimator(settings.estimator)
    y_train = split.train[cfg.label_column].to_numpy(dtype=bool)
    fit_began = time.perf_counter()
    with compute_threads(settings.estimator.threads):
        estimator.fit(split.train[columns], y_train)
        fit_s = _elapsed(fit_began)
        train_scores = estimator.predict_proba(split.train[columns])[:, 1]
    with rd.file(RunDir.MODEL).open("wb") as handle:
        pickle.dump(estimator, handle, protocol=pickle.HIGHEST_PROTOCOL)
    rd.write_parquet(RunDir.TEST_SET, split.test)
    summary = {
        **split.summary(cfg.timestamp_column),
        "train_positive_rate": float(y_train.mean()),
        "test_positive_rate": float(split.test[cfg.label_column].mean()),
        "train_roc_auc": float(roc_auc_score(y_train, train_scores)),
        "estimator_class": settings.estimator.class_path,
        "estimator_params": estimator_params(estimator),
        "seed": settings.estimator.seed,
        "feature_columns": columns,
        "fit_s": fit_s,
        "duration_s": _elapsed(began),
    }
    rd.write_json(RunDir.TRAIN, summary)
    return summary


def load_model(rd: RunDir) -> Any:
    """The estimator ``train`` fitted (a pickle this pipeline wrote into its own run folder)."""
    with rd.require(RunDir.MODEL, "train").open("rb") as handle:
        return pickle.load(handle)


# --- evaluate ---------------------------------------------------------------------------------


def evaluate(run_dir: Path, settings: TrainingSettings | None = None) -> dict[str, Any]:
    """Holdout metrics (classification, calibration, top-1 over candidate sets), permutation
    importances and PNG plots."""
    began = time.perf_counter()
    rd = RunDir.existing(run_dir)
    settings = _settings(rd, settings)
    cfg = settings.dataset
    model = load_model(rd)
    trained = rd.read_json(RunDir.TRAIN, "train")
    columns: list[str] = trained["feature_columns"]
    test_set = rd.read_parquet(RunDir.TEST_SET, "train")
    candidates = rd.read_parquet(RunDir.CANDIDATES, "build-training-set")
    scorer = sklearn_scorer(model, columns)
    with compute_threads(settings.estimator.threads):
        metrics, table, scores = holdout_metrics(
            scorer, test_set, candidates, cfg, settings.evaluation
        )
        importances = permutation_importances(
            model,
            test_set,
            columns,
            cfg.label_column,
            settings.evaluation,
            settings.estimator.seed,
        )
    metrics["train_roc_auc"] = float(trained["train_roc_auc"])
    plots = rd.file(RunDir.PLOTS)
    plots.mkdir(exist_ok=True)
    plot_roc(test_set[cfg.label_column], scores, metrics["roc_auc"], plots / "roc_curve.png")
    plot_calibration(table, metrics["brier_score"], plots / "calibration.png")
    plot_importance(importances, plots / "permutation_importance.png")
    result = {
        "metrics": metrics,
        "operating_threshold": settings.evaluation.operating_threshold,
        "reliability": table,
        "permutation_importance": importances,
        "n_holdout_events": len(test_set),
        "n_holdout_candidates": len(holdout_candidates(test_set, candidates, cfg)),
        "plots": sorted(p.name for p in plots.glob("*.png")),
        "duration_s": _elapsed(began),
    }
    rd.write_json(RunDir.EVALUATION, result)
    return result


# --- register ---------------------------------------------------------------------------------


def _skops_trusted_types(model: Any) -> tuple[list[str], int]:
    """Types skops would refuse to load from this model (ours: we just fitted it), and the size
    of its skops serialisation."""
    import skops.io as sio

    blob = sio.dumps(model)
    return list(sio.get_untrusted_types(data=blob)), len(blob)


#: the MLmodel metadata key serving reads the positive class from (it never guesses it)
POSITIVE_CLASS_KEY = "positive_class"


def _positive_class(model: Any) -> str:
    """The class ``predict_proba`` column 1 stands for: the label is a boolean, True positive
    (what evaluation scores and the gate compares)."""
    classes = [bool(c) for c in getattr(model, "classes_", [])]
    if classes != [False, True]:
        raise ValueError(f"expected the classes [False, True], the model has {classes}")
    return str(True)


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{dist}=={version(dist)}"
        for dist in ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")
    ]


def _flat_params(
    settings: TrainingSettings, manifest: dict[str, Any], trained: dict[str, Any]
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "window_start": manifest["window_start"],
        "window_end": manifest["window_end"],
        "feature_service": manifest["feature_service"],
        "training_set_hash": manifest["training_set_hash"],
        "n_rows": manifest["n_rows"],
        "n_train": trained["n_train"],
        "n_test": trained["n_test"],
        "split_cutoff": trained["cutoff"],
        "split_test_fraction": settings.split.test_fraction,
        "split_test_days": settings.split.test_days,
        "estimator": settings.estimator.class_path,
        "seed": settings.estimator.seed,
        "operating_threshold": settings.evaluation.operating_threshold,
    }
    for key, value in trained["estimator_params"].items():
        params[f"hp.{key}"] = value
    return params


def _lineage_tags(
    settings: TrainingSettings,
    manifest: dict[str, Any],
    trained: dict[str, Any],
    rd: RunDir,
) -> dict[str, str]:
    from training_pipeline.lineage import code_version

    code = code_version()
    tags = {
        "data.window_start": manifest["window_start"],
        "data.window_end": manifest["window_end"],
        "data.n_rows": str(manifest["n_rows"]),
        "data.n_train": str(trained["n_train"]),
        "data.n_test": str(trained["n_test"]),
        "data.n_candidates": str(manifest["n_candidates"]),
        "data.training_set_hash": manifest["training_set_hash"],
        "data.candidates_hash": manifest["candidates_hash"],
        "data.split_cutoff": trained["cutoff"],
        "features.service": manifest["feature_service"],
        "features.refs": ",".join(manifest["feature_refs"]),
        "code.git_commit": code.commit,
        "code.git_dirty": "unknown" if code.dirty is None else str(code.dirty).lower(),
        "mlflow.source.git.commit": code.commit,
        "config": json.dumps(settings.run_config(), sort_keys=True),
        "pipeline.run_dir": str(rd.path),
    }
    trigger_file = rd.file(RunDir.TRIGGER)
    if trigger_file.exists():
        trigger = json.loads(trigger_file.read_text(encoding="utf-8"))
        tags["trigger.source"] = str(trigger.get("source", "manual"))
        alert = trigger.get("alert")
        if isinstance(alert, dict):
            labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else alert
            name = labels.get("alertname") if isinstance(labels, dict) else None
            if name:
                tags["trigger.alertname"] = str(name)
    return tags


def _log_reference(
    rd: RunDir,
    settings: TrainingSettings,
    model: Any,
    test_set: pd.DataFrame,
    columns: list[str],
) -> dict[str, str]:
    """Write the monitoring reference (``training_pipeline.reference``) into the run folder and
    log it to the active MLflow run; returns its tags."""
    import mlflow

    from training_pipeline import reference

    label = settings.dataset.label_column
    seed = settings.estimator.seed
    with compute_threads(settings.estimator.threads):
        frame = reference.reference_frame(
            model, test_set, columns, label, settings.evaluation.reference_max_rows, seed
        )
    manifest = reference.reference_manifest(frame, columns, label, len(test_set), seed)
    folder = rd.file(reference.ARTIFACT_DIR)
    folder.mkdir(exist_ok=True)
    frame.to_parquet(folder / reference.DATA_FILE, index=False)
    (folder / reference.MANIFEST_FILE).write_text(
        json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8"
    )
    mlflow.log_artifacts(str(folder), artifact_path=reference.ARTIFACT_DIR)
    return {reference.PATH_TAG: reference.ARTIFACT_PATH, reference.ROWS_TAG: str(len(frame))}


def register(run_dir: Path, settings: TrainingSettings | None = None) -> dict[str, Any]:
    """Log the run to MLflow (params, metrics, plots, lineage, the model with signature, input
    example and pip requirements, serving ``predict_proba``, the monitoring reference) and
    register a model version.

    Idempotent per run folder: when ``registration.json`` names a version that exists, nothing
    is logged again (an Airflow retry does not create a second version).
    """
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from training_pipeline.registry import make_client, require_version

    began = time.perf_counter()
    rd = RunDir.existing(run_dir)
    settings = _settings(rd, settings)
    client = make_client(settings)
    previous = rd.file(RunDir.REGISTRATION)
    if previous.exists():
        registration: dict[str, Any] = json.loads(previous.read_text(encoding="utf-8"))
        if registration.get("model_name") == settings.model_name:
            require_version(client, settings.model_name, str(registration["version"]))
            return {**registration, "reused": True}
    manifest = rd.read_json(RunDir.MANIFEST, "build-training-set")
    trained = rd.read_json(RunDir.TRAIN, "train")
    evaluation = rd.read_json(RunDir.EVALUATION, "evaluate")
    model = load_model(rd)
    columns: list[str] = trained["feature_columns"]
    test_set = rd.read_parquet(RunDir.TEST_SET, "train")
    example = test_set[columns].head(5).reset_index(drop=True)
    with warnings.catch_warnings():
        # integer features are integers online too (Feast returns the declared types)
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(example, model.predict_proba(example))
    trusted, model_bytes = _skops_trusted_types(model)

    if settings.tracking_uri.strip():
        mlflow.set_tracking_uri(settings.tracking_uri)
        mlflow.set_registry_uri(settings.tracking_uri)
    experiment = mlflow.set_experiment(settings.experiment_name)
    tags = _lineage_tags(settings, manifest, trained, rd)
    metrics = {k: float(v) for k, v in evaluation["metrics"].items() if k in LOGGED_METRICS}
    metrics["model_size_bytes"] = float(model_bytes)
    run_name = f"{settings.model_name}-{rd.path.name}"
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=run_name) as run:
        mlflow.log_params(_flat_params(settings, manifest, trained))
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        for name in (
            RunDir.SETTINGS,
            RunDir.MANIFEST,
            RunDir.VALIDATION,
            RunDir.TRAIN,
            RunDir.EVALUATION,
            RunDir.TRIGGER,
        ):
            if rd.file(name).exists():
                mlflow.log_artifact(str(rd.file(name)), artifact_path="pipeline")
        mlflow.log_artifacts(str(rd.file(RunDir.PLOTS)), artifact_path="plots")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            model_info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                input_example=example,
                pip_requirements=_pip_requirements(),
                pyfunc_predict_fn="predict_proba",
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                skops_trusted_types=trusted,
                metadata={POSITIVE_CLASS_KEY: _positive_class(model)},
            )
        reference_tags = _log_reference(rd, settings, model, test_set, columns)
        tags.update(reference_tags)
        mlflow.set_tags(reference_tags)
        run_id = run.info.run_id
    version = mlflow.register_model(
        model_info.model_uri,
        settings.model_name,
        tags={
            k: v
            for k, v in tags.items()
            if k.startswith(("data.", "features.", "code.", "monitoring."))
            or k == "pipeline.run_dir"
        },
    )
    client.update_model_version(
        settings.model_name,
        version.version,
        description=(
            f"{settings.estimator.class_path} on {manifest['window_start']} .. "
            f"{manifest['window_end']}: holdout roc_auc {metrics['roc_auc']:.4f}, "
            f"top1_accuracy {metrics['top1_accuracy']:.4f}"
        ),
    )
    registration = {
        "model_name": settings.model_name,
        "version": str(version.version),
        "run_id": run_id,
        "experiment_id": experiment.experiment_id,
        "model_uri": f"models:/{settings.model_name}/{version.version}",
        "logged_model_uri": model_info.model_uri,
        "model_size_bytes": model_bytes,
        "duration_s": _elapsed(began),
    }
    rd.write_json(RunDir.REGISTRATION, registration)
    return registration


# --- gate -------------------------------------------------------------------------------------


def gate(
    run_dir: Path,
    settings: TrainingSettings | None = None,
    *,
    mode: GateMode | None = None,
    actor: str = "gate",
) -> GateOutcome:
    """Decide whether the registered candidate is promoted, and apply the decision per mode.

    ``disabled``: nothing is decided or moved (status skipped). ``dry_run``: decided and
    reported, nothing moved (status skipped). ``enabled``: a pass moves the alias (status
    promoted, recorded in the promotion log); a failure moves nothing (status refused). The
    version keeps its number either way; the decision is also tagged on the version.
    """
    from training_pipeline.registry import alias_version, make_client, move_alias

    began = time.perf_counter()
    rd = RunDir.existing(run_dir)
    settings = _settings(rd, settings)
    cfg = settings.gate if mode is None else settings.gate.model_copy(update={"mode": mode})
    registration = rd.read_json(RunDir.REGISTRATION, "register")
    evaluation = rd.read_json(RunDir.EVALUATION, "evaluate")
    name = settings.model_name
    if registration["model_name"] != name:
        raise ValueError(
            f"the run registered {registration['model_name']!r}, not the configured {name!r}"
        )
    version = str(registration["version"])
    candidate: dict[str, float] = {k: float(v) for k, v in evaluation["metrics"].items()}
    client = make_client(settings)

    def finish(
        status: GateStatus,
        alias: str,
        message: str,
        decision: GateDecision | None = None,
        seq: int | None = None,
    ) -> GateOutcome:
        """The outcome, recorded: tags on the version and the run folder's gate record."""
        outcome = GateOutcome(
            status=status,
            mode=cfg.mode,
            model_name=name,
            version=version,
            alias=alias,
            message=message,
            decision=decision,
            promotion_seq=seq,
        )
        client.set_model_version_tag(name, version, "gate.status", outcome.status.value)
        client.set_model_version_tag(name, version, "gate.mode", outcome.mode.value)
        client.set_model_version_tag(name, version, "gate.message", outcome.message[:5000])
        rd.write_json(
            RunDir.GATE, {**outcome.model_dump(mode="json"), "duration_s": _elapsed(began)}
        )
        return outcome

    if cfg.mode == GateMode.DISABLED:
        return finish(
            GateStatus.SKIPPED,
            cfg.promote_to,
            f"gate disabled: {name} v{version} is registered and gets no alias; "
            f"promote it by hand (training-pipeline promote {version} --reason ...)",
        )

    champion_version = alias_version(client, name, CHAMPION)
    champion_metrics: dict[str, float] | None = None
    champion_error: str | None = None
    if champion_version is not None and champion_version != version:
        test_set = rd.read_parquet(RunDir.TEST_SET, "train")
        candidates = rd.read_parquet(RunDir.CANDIDATES, "build-training-set")
        try:
            with compute_threads(settings.estimator.threads):
                champion_metrics = score_champion(
                    f"models:/{name}/{champion_version}",
                    test_set,
                    candidates,
                    settings.dataset,
                    settings.evaluation,
                )
        except ChampionError as exc:
            champion_error = str(exc)
    if champion_metrics is not None:
        for metric in ("roc_auc", "top1_accuracy", "log_loss", "brier_score", "pr_auc"):
            if metric in champion_metrics:
                client.log_metric(
                    registration["run_id"], f"champion_{metric}", champion_metrics[metric]
                )
    decision: GateDecision = decide(
        cfg, candidate, champion_metrics, champion_version, champion_error
    )
    # first model on a fresh registry: nothing to shadow, it becomes the champion
    alias = CHAMPION if champion_version is None else cfg.promote_to
    current = alias_version(client, name, alias)
    verdict = "passes" if decision.passed else "fails"
    basis = (
        "no champion yet (absolute bounds only)"
        if champion_version is None
        else f"vs champion v{champion_version} on the same holdout"
    )
    summary = f"{name} v{version} {verdict} the gate, {basis}: {decision.summary()}"

    def outcome(status: GateStatus, message: str, seq: int | None = None) -> GateOutcome:
        return finish(status, alias, message, decision, seq)

    if current == version:
        return outcome(GateStatus.SKIPPED, f"{name}@{alias} is already v{version}; {summary}")
    if cfg.mode == GateMode.DRY_RUN:
        would = f"would set {alias} to v{version}" if decision.passed else "would refuse"
        return outcome(GateStatus.SKIPPED, f"dry run, nothing moved ({would}): {summary}")
    if not decision.passed:
        return outcome(GateStatus.REFUSED, f"refused, no alias moved: {summary}")
    key: dict[str, float] = {
        k: candidate[k] for k in ("roc_auc", "top1_accuracy", "log_loss") if k in candidate
    }
    if champion_metrics is not None:
        key.update(
            {
                f"champion_{k}": champion_metrics[k]
                for k in ("roc_auc", "top1_accuracy")
                if k in champion_metrics
            }
        )
    record = move_alias(
        client, name, alias, version, actor=actor, action="gate", reason=summary, metrics=key
    )
    moved = f"{(record.from_version and 'v' + record.from_version) or 'none'} -> v{version}"
    return outcome(GateStatus.PROMOTED, f"promoted {name}@{alias} {moved}: {summary}", record.seq)


# --- all steps ----------------------------------------------------------------------------------


def run_all(
    run_dir: Path,
    settings: TrainingSettings | None = None,
    *,
    labels: LabelSource | None = None,
    features: FeatureSource | None = None,
    mode: GateMode | None = None,
    actor: str = "gate",
) -> GateOutcome:
    """Every step in order (what the DAG does), in this process."""
    build_training_set(run_dir, settings, labels=labels, features=features)
    validate(run_dir, settings)
    train(run_dir, settings)
    evaluate(run_dir, settings)
    register(run_dir, settings)
    return gate(run_dir, settings, mode=mode, actor=actor)


def durations(run_dir: Path) -> dict[str, float]:
    """Seconds each step took, from the run folder's step records."""
    rd = RunDir(run_dir)
    out: dict[str, float] = {}
    for step, name in (
        ("build_training_set", RunDir.MANIFEST),
        ("validate", RunDir.VALIDATION),
        ("train", RunDir.TRAIN),
        ("evaluate", RunDir.EVALUATION),
        ("register", RunDir.REGISTRATION),
        ("gate", RunDir.GATE),
    ):
        target = rd.file(name)
        if target.exists():
            value = json.loads(target.read_text(encoding="utf-8")).get("duration_s")
            if isinstance(value, int | float):
                out[step] = float(value)
    return out


__all__ = [
    "build_training_set",
    "durations",
    "evaluate",
    "gate",
    "register",
    "run_all",
    "train",
    "validate",
]
