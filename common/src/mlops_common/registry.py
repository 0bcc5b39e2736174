"""The model registry's conventions (MLflow) and the one small client every component uses.

Conventions — what the training pipeline writes and serving, monitoring and the operators read:

- aliases: ``champion`` is served, ``challenger`` is canaried or shadowed;
- the version tag ``features.service`` names the Feast feature service the model was trained on;
- every registered version's run carries its **reference data** for monitoring:
  ``reference/reference.parquet`` (the model's feature columns, its out-of-sample ``score`` and
  the label) and ``reference/reference.json`` (the manifest), and the run and the version are
  tagged ``monitoring.reference_path`` (and ``monitoring.reference_rows``);
- the promotion log: registered-model tags ``promotion.NNNN`` (``mlops_common.events.promotion``).

The client functions import MLflow only when called (``mlops-common[mlflow]`` installs
``mlflow-skinny``): a component that never talks to the registry does not carry MLflow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

from mlops_common.events.promotion import PromotionRecord, is_promotion_tag

Alias = Literal["champion", "challenger"]
CHAMPION: Alias = "champion"
CHALLENGER: Alias = "challenger"
ALIASES: tuple[Alias, ...] = (CHAMPION, CHALLENGER)

FEATURE_SERVICE_TAG = "features.service"

REFERENCE_DIR = "reference"
REFERENCE_DATA_FILE = "reference.parquet"
REFERENCE_MANIFEST_FILE = "reference.json"
REFERENCE_PATH = f"{REFERENCE_DIR}/{REFERENCE_DATA_FILE}"
REFERENCE_PATH_TAG = "monitoring.reference_path"
REFERENCE_ROWS_TAG = "monitoring.reference_rows"
#: version of the reference manifest's layout
REFERENCE_FORMAT = 1
#: the reference frame's column of the model's out-of-sample score
SCORE_COLUMN = "score"

#: error codes MLflow uses when a model, version or alias does not exist
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"})


class RegistryUnavailable(RuntimeError):
    """The model registry did not answer (try again later)."""


def is_not_found(exc: BaseException) -> bool:
    """True when MLflow says the model, version or alias does not exist."""
    return getattr(exc, "error_code", None) in NOT_FOUND_CODES


def short(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def configure_http(timeout_s: float) -> Callable[[], None]:
    """Registry calls fail fast instead of MLflow's default minutes of retries (a watcher polls
    again anyway). MLflow reads these from the process environment; values already set win.
    Returns a function that restores the environment."""
    wanted = {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_s))),
    }
    added = [name for name in wanted if name not in os.environ]
    for name in added:
        os.environ[name] = wanted[name]

    def restore() -> None:
        for name in added:
            os.environ.pop(name, None)

    return restore


def make_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` whose tracking and registry URIs are both ``tracking_uri``."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri.strip() or None
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points at; None when the model or the alias does not exist.
    Raises ``RegistryUnavailable`` when the registry does not answer."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise RegistryUnavailable(f"{type(exc).__name__}: {short(exc)}") from exc


def aliases(client: Any, name: str) -> dict[str, str]:
    """Every alias of the model and its version (empty when the model does not exist)."""
    try:
        model = client.get_registered_model(name)
    except Exception as exc:
        if is_not_found(exc):
            return {}
        raise RegistryUnavailable(f"{type(exc).__name__}: {short(exc)}") from exc
    return {alias: str(version) for alias, version in model.aliases.items()}


def promotion_log(client: Any, name: str) -> list[PromotionRecord]:
    """The model's promotion log, oldest first (empty when the model does not exist)."""
    try:
        tags = client.get_registered_model(name).tags
    except Exception as exc:
        if is_not_found(exc):
            return []
        raise RegistryUnavailable(f"{type(exc).__name__}: {short(exc)}") from exc
    records = [
        PromotionRecord.model_validate_json(value)
        for key, value in tags.items()
        if is_promotion_tag(key)
    ]
    return sorted(records, key=lambda record: record.seq)
