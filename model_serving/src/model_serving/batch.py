"""Batch prediction: score every active driver (or the drivers of a request file) with the
champion, for one interval, and write the result table idempotently per interval.

- The model: the version the registry's champion alias points at when the run starts (the same
  loading contract as the online API: local model cache, sklearn fast path, signature columns).
- The features: the model's feature service, point in time at the interval's end
  (``get_historical_features`` on the offline store): re-running an interval scores the same
  features, whenever it runs (a backfill, a retry).
- Active drivers: those with a row in the offline store within the feature view's TTL before the
  interval's end (older ones get no features from Feast and are counted as inactive).
- The output: ``<MLOPS_DATA_DIR>/offline/driver_predictions/interval_end=<ISO>/predictions.parquet``
  with ``driver_id, score, rank, model_name, model_version, interval_start, interval_end,
  scored_at`` (one row per scored driver, rank 1 = best). Written to a temporary file and renamed:
  a run replaces its interval's file whole, never half.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_common.registry import RegistryUnavailable, alias_version, make_client
from mlops_common.settings import PlatformSettings
from model_serving.models import (
    LoadedModel,
    ModelLoadError,
    fetch_version,
    load_version,
)
from model_serving.settings import ServingSettings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("model_serving.batch")

TABLE = "driver_predictions"
FILE = "predictions.parquet"
COLUMNS = (
    "driver_id",
    "score",
    "rank",
    "model_name",
    "model_version",
    "interval_start",
    "interval_end",
    "scored_at",
)


class BatchError(RuntimeError):
    """The batch cannot run as asked (the message says why)."""


def table_dir(settings: ServingSettings) -> Path:
    return settings.data_dir / "offline" / TABLE


def interval_file(root: Path, interval_end: datetime) -> Path:
    stamp = interval_end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return root / f"interval_end={stamp}" / FILE


def parse_time(value: str | datetime, name: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise BatchError(f"{name}: {value!r} is not an ISO 8601 time") from None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return datetime(
        parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute, parsed.second, tzinfo=UTC
    )


def read_drivers_file(path: Path) -> list[int]:
    """Driver ids from a CSV with a ``driver_id`` column, or one id per line."""
    if not path.is_file():
        raise BatchError(f"drivers file {path} does not exist")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if lines and not lines[0].lstrip("-").isdigit():
        header = [h.strip() for h in lines[0].split(",")]
        if "driver_id" not in header:
            raise BatchError(f"{path}: no driver_id column (header: {header})")
        column = header.index("driver_id")
        lines = [line.split(",")[column].strip() for line in lines[1:]]
    ids: list[int] = []
    for number, text in enumerate(lines, start=1):
        if not text.isdigit() or int(text) < 1:
            raise BatchError(
                f"{path}: line {number}: {text!r} is not a driver id (an integer >= 1)"
            )
        ids.append(int(text))
    if not ids:
        raise BatchError(f"{path}: no driver ids")
    return sorted(set(ids))


def active_drivers(
    view: Any, settings: PlatformSettings, interval_end: datetime, ttl: timedelta
) -> list[int]:
    """Entity ids with a row of ``view``'s offline source in ``[interval_end - ttl,
    interval_end)``."""
    import pyarrow.dataset as ds

    from mlops_common.features import offline_path

    (key,) = view.join_keys
    root = offline_path(settings, view.batch_source.path)
    if not root.is_dir():
        return []
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    since = interval_end - ttl if ttl else datetime(1970, 1, 1, tzinfo=UTC)
    table = dataset.to_table(
        columns=[key],
        filter=(ds.field("event_timestamp") >= since)
        & (ds.field("event_timestamp") < interval_end),
    )
    return sorted({int(v) for v in table.column(key).to_pylist()})


def run_batch(
    settings: ServingSettings,
    *,
    drivers_file: str | Path | None = None,
    interval_start: str | datetime | None = None,
    interval_end: str | datetime | None = None,
    output_dir: str | Path | None = None,
    store: Any = None,
) -> dict[str, Any]:
    """Score one interval; returns a summary (rows written, model, file, timings)."""
    began = time.perf_counter()
    start, end = resolve_interval_bounds(interval_start, interval_end)
    model = load_champion(settings)
    if store is None:
        from mlops_common.features import feature_store

        store = feature_store(settings)
    candidates = Candidates.pick(store, model, settings, end, drivers_file)
    features = candidates.features(store, model, end)
    table, inactive = score_table(model, features, len(candidates.ids), start, end)
    root = Path(output_dir) if output_dir else table_dir(settings)
    target = write_table(table, interval_file(root, end))
    summary = {
        "interval_start": start.isoformat(),
        "interval_end": end.isoformat(),
        "model": {"name": model.name, "version": model.version, "scorer": model.scorer_kind},
        "feature_service": model.feature_service,
        "candidates": len(candidates.ids),
        "candidates_from": candidates.source,
        "scored": len(table),
        "inactive_or_unknown": inactive,
        "file": str(target),
        "seconds": round(time.perf_counter() - began, 3),
    }
    log.info("batch prediction: %s", summary)
    return summary


def resolve_interval_bounds(
    interval_start: str | datetime | None, interval_end: str | datetime | None
) -> tuple[datetime, datetime]:
    """(start, end): the end defaults to the current hour, the start to an hour before the end."""
    end = (
        parse_time(interval_end, "interval_end")
        if interval_end
        else (datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    )
    start = (
        parse_time(interval_start, "interval_start")
        if interval_start
        else (end - timedelta(hours=1))
    )
    if start >= end:
        raise BatchError(
            f"interval_start {start.isoformat()} must be before interval_end {end.isoformat()}"
        )
    return start, end


def load_champion(settings: ServingSettings) -> LoadedModel:
    """The version the champion alias points at now, loaded as the online API loads it."""
    client = make_client(settings.tracking_uri)
    name = settings.serving_model_name
    try:
        version = alias_version(client, name, settings.serving_champion_alias)
    except RegistryUnavailable as exc:
        raise BatchError(f"model registry unreachable: {exc}") from exc
    if version is None:
        raise BatchError(
            f"{name} has no version with the alias {settings.serving_champion_alias!r}"
        )
    try:
        path = fetch_version(client, settings.tracking_uri, settings.model_cache_dir, name, version)
        return load_version(
            path,
            alias="champion",
            source="registry",
            default_feature_service=settings.serving_feature_service,
            compiled=settings.serving_compiled_models,
        )
    except (ModelLoadError, RegistryUnavailable) as exc:
        raise BatchError(f"cannot load {name} v{version}: {exc}") from exc


@dataclass(frozen=True)
class Candidates:
    """The drivers to score and the model's feature service they are scored with."""

    ids: list[int]
    #: where the ids come from (a file, or the active drivers)
    source: str
    service: Any

    @classmethod
    def pick(
        cls,
        store: Any,
        model: LoadedModel,
        settings: ServingSettings,
        end: datetime,
        drivers_file: str | Path | None,
    ) -> Candidates:
        try:
            service = store.get_feature_service(model.feature_service)
        except Exception as exc:
            raise BatchError(f"feature service {model.feature_service!r}: {exc}") from exc
        if drivers_file:
            return cls(read_drivers_file(Path(drivers_file)), f"file {drivers_file}", service)
        views = [store.get_feature_view(p.name) for p in service.feature_view_projections]
        ttl = max((v.ttl for v in views if v.ttl), default=timedelta(0))
        return cls(active_drivers(views[0], settings, end, ttl), "active drivers", service)

    def features(self, store: Any, model: LoadedModel, end: datetime) -> pd.DataFrame:
        """The feature service's features of every candidate, point in time at ``end``."""
        import pandas as pd

        frame = pd.DataFrame({"driver_id": np.array(self.ids, dtype=np.int64)})
        frame["event_timestamp"] = pd.Timestamp(end)
        if self.ids:
            features = store.get_historical_features(entity_df=frame, features=self.service)
            found: pd.DataFrame = features.to_df()
        else:
            found = frame.assign(**{c: pd.Series(dtype="float64") for c in model.columns})
        missing = [c for c in model.columns if c not in found.columns]
        if missing:
            raise BatchError(f"feature service {model.feature_service!r} gave no {missing}")
        return found


def score_table(
    model: LoadedModel, features: pd.DataFrame, candidates: int, start: datetime, end: datetime
) -> tuple[pd.DataFrame, int]:
    """The result table (``COLUMNS``, best first) of the drivers with every feature, and how
    many candidates had none (inactive, or unknown)."""
    import pandas as pd

    complete = features.dropna(subset=list(model.columns))
    complete = complete.drop_duplicates("driver_id").sort_values("driver_id", kind="stable")
    matrix = complete[list(model.columns)].to_numpy(dtype=np.float64)
    scores = model.score(matrix) if len(complete) else np.empty(0)
    scored_at = datetime.now(UTC)
    table = pd.DataFrame(
        {
            "driver_id": complete["driver_id"].to_numpy(dtype=np.int64),
            "score": scores.astype(np.float64),
        }
    )
    table["rank"] = (
        table["score"].rank(method="first", ascending=False).astype("int32")
        if len(table)
        else pd.Series(dtype="int32")
    )
    table["model_name"] = model.name
    table["model_version"] = str(model.version)
    table["interval_start"] = pd.Timestamp(start)
    table["interval_end"] = pd.Timestamp(end)
    table["scored_at"] = pd.Timestamp(scored_at)
    table = table.sort_values("rank", kind="stable").reset_index(drop=True)[list(COLUMNS)]
    return table, candidates - len(complete)


def write_table(table: pd.DataFrame, target: Path) -> Path:
    """Replace ``target`` whole (a temporary file renamed: never half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{FILE}.{os.getpid()}.tmp")
    table.to_parquet(tmp, index=False)
    tmp.replace(target)
    return target


def run_batch_task(context: Any) -> dict[str, Any]:
    """The DAG task: the run's interval (conf ``start``/``end`` or the data interval) and an
    optional ``drivers_file`` param."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_common.intervals import ConfError, resolve_interval

    params = dict(context.get("params") or {})
    try:
        interval = resolve_interval(
            params, context.get("data_interval_start"), context.get("data_interval_end")
        )
        summary = run_batch(
            ServingSettings.load(),
            drivers_file=params.get("drivers_file") or None,
            interval_start=interval.start,
            interval_end=interval.end,
        )
    except (BatchError, ConfError) as exc:
        raise AirflowFailException(f"batch prediction: {exc}") from exc
    print(f"batch prediction: {summary}", flush=True)
    return summary


def scored_drivers(path: Path) -> Sequence[int]:
    """The driver ids of a written interval file (tests, operators)."""
    import pandas as pd

    return [int(v) for v in pd.read_parquet(path, columns=["driver_id"])["driver_id"]]
