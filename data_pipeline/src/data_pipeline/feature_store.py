"""The platform's Feast feature store: configuration built from settings, and ``feast apply``.

Public API (small and stable; the stream consumer, the training pipeline and serving use it):

- names: ``ENTITY``, ``JOIN_KEY``, ``PUSH_SOURCE`` (``driver_stats_push``), ``FEATURE_VIEW``
  (``driver_hourly_stats``), ``FEATURE_SERVICE`` (``driver_ranking_v1``), ``FEATURE_NAMES`` and
  ``MODEL_FEATURES`` (``driver_hourly_stats:conv_rate``, …), ``OFFLINE_COLUMNS`` (the columns and
  dtypes of the offline store's files);
- ``repo_config(settings)`` and ``feature_store(settings)``: the store's configuration, shared by
  every process that opens it (``mlops_common.features``, re-exported here);
- ``apply(settings) -> ApplyResult``: exactly ``feast apply`` of ``settings.feature_repo`` with that
  configuration (``feast.repo_operations.apply_total_with_repo_instance``); idempotent;
- ``offline_table_dir(settings)``: where the offline rows of the feature view live.

The definitions live in ``data_pipeline/feature_repo`` (Feast imports every ``.py`` file there);
this module only mirrors their names as constants, and a test checks they agree.

The offline source's path is stored relative (``offline/driver_hourly_stats``) and resolves
against each process's ``MLOPS_DATA_DIR`` (see ``mlops_common.features``).
The source is a *directory* (hive-style ``date=YYYY-MM-DD`` partitions, many files): the file
offline store reads it with ``dask.dataframe.read_parquet`` as one data set, which works for
``materialize`` and ``get_historical_features`` (tested); the partition column ``date`` is
read along and ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlops_common.features import feature_store, online_store_config, registry_config, repo_config
from mlops_common.redis import redact

if TYPE_CHECKING:
    from feast.repo_contents import RepoContents

    from data_pipeline.settings import DataPipelineSettings

__all__ = [
    "FEATURE_NAMES",
    "FEATURE_SERVICE",
    "FEATURE_VIEW",
    "JOIN_KEY",
    "MODEL_FEATURES",
    "OFFLINE_COLUMNS",
    "ApplyResult",
    "apply",
    "feature_store",
    "load_repo",
    "offline_table_dir",
    "online_store_config",
    "registry_config",
    "repo_config",
]

ENTITY = "driver"
JOIN_KEY = "driver_id"
PUSH_SOURCE = "driver_stats_push"
BATCH_SOURCE = "driver_hourly_stats_source"
FEATURE_VIEW = "driver_hourly_stats"
FEATURE_SERVICE = "driver_ranking_v1"
#: The features of the feature view, in the order the model uses them.
FEATURE_NAMES: tuple[str, ...] = (
    "conv_rate",
    "acc_rate",
    "avg_daily_trips",
    "rating",
    "cancel_rate",
)
#: Feature references of the model's feature service, ``<view>:<feature>``.
MODEL_FEATURES: tuple[str, ...] = tuple(f"{FEATURE_VIEW}:{name}" for name in FEATURE_NAMES)
#: The offline table's folder, relative to the data directory (the FileSource's path).
OFFLINE_TABLE_PATH = "offline/driver_hourly_stats"
#: Columns and pandas dtypes of every parquet file in the offline table (batch and stream).
OFFLINE_COLUMNS: dict[str, str] = {
    "driver_id": "int64",
    "event_timestamp": "datetime64[ns, UTC]",
    "created": "datetime64[ns, UTC]",
    "conv_rate": "float64",
    "acc_rate": "float64",
    "avg_daily_trips": "int64",
    "rating": "float64",
    "cancel_rate": "float64",
}


def offline_table_dir(settings: DataPipelineSettings) -> Path:
    """The feature view's offline folder: ``<data_dir>/offline/driver_hourly_stats``."""
    return settings.data_dir / OFFLINE_TABLE_PATH


# ------------------------------------------------------------------------------------ feast apply


def _load_module(path: Path) -> ModuleType:
    """Import one definition file of the repository by path (nothing is added to sys.path)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"_feast_repo_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import feature repository file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def load_repo(repo_root: Path) -> RepoContents:
    """The Feast objects defined in ``repo_root``, collected like ``feast apply`` does.

    The files are those ``feast.repo_operations.get_repo_files`` lists (every ``.py`` file but
    ``__init__.py`` and what ``.feastignore`` excludes); objects are collected by the rules of
    ``feast.repo_operations.parse_repo`` (the same object is taken once; a push source brings its
    batch source). ``parse_repo`` itself needs the folder on ``sys.path`` and the working
    directory changed; loading the files by path avoids both.
    """
    from feast import (
        BatchFeatureView,
        Entity,
        FeatureService,
        FeatureView,
        OnDemandFeatureView,
        Project,
        PushSource,
        StreamFeatureView,
    )
    from feast.data_source import DataSource, KafkaSource, KinesisSource
    from feast.feature_view import DUMMY_ENTITY
    from feast.permissions.permission import Permission
    from feast.repo_contents import RepoContents
    from feast.repo_operations import get_repo_files

    if not repo_root.is_dir():
        raise FileNotFoundError(f"feature repository {repo_root} does not exist")
    res = RepoContents(
        projects=[],
        data_sources=[],
        feature_views=[],
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=[],
        feature_services=[],
        permissions=[],
    )

    def add(items: list[Any], obj: Any) -> bool:
        if any(obj is item for item in items):
            return False
        items.append(obj)
        return True

    files = get_repo_files(repo_root.resolve())
    if not files:
        raise FileNotFoundError(f"feature repository {repo_root} has no definition files")
    for path in files:
        module = _load_module(path)
        for attr in dir(module):
            obj = getattr(module, attr)
            if (
                isinstance(obj, DataSource)
                and add(res.data_sources, obj)
                and isinstance(obj, PushSource | KafkaSource | KinesisSource)
                and obj.batch_source is not None
            ):
                add(res.data_sources, obj.batch_source)
            if isinstance(obj, StreamFeatureView):
                if add(res.stream_feature_views, obj):
                    if obj.batch_source is not None:
                        add(res.data_sources, obj.batch_source)
                    if obj.stream_source is not None:
                        add(res.data_sources, obj.stream_source)
            elif isinstance(obj, FeatureView | BatchFeatureView):
                if add(res.feature_views, obj):
                    if obj.batch_source is not None:
                        add(res.data_sources, obj.batch_source)
                    if obj.stream_source is not None:
                        add(res.data_sources, obj.stream_source)
            elif isinstance(obj, Entity):
                add(res.entities, obj)
            elif isinstance(obj, FeatureService):
                add(res.feature_services, obj)
            elif isinstance(obj, OnDemandFeatureView):
                add(res.on_demand_feature_views, obj)
            elif isinstance(obj, Permission):
                add(res.permissions, obj)
            elif isinstance(obj, Project):
                add(res.projects, obj)
    res.entities.append(DUMMY_ENTITY)
    return res


@dataclass(frozen=True)
class ApplyResult:
    project: str
    registry: str
    online_store: str
    entities: list[str]
    feature_views: list[str]
    feature_services: list[str]
    data_sources: list[str]
    seconds: float
    #: what ``feast apply`` printed (the registry and infrastructure diff)
    output: str


def describe_registry(settings: DataPipelineSettings) -> str:
    if settings.uses_postgres:
        from mlops_common.postgres import database_url

        url = database_url(settings.mlops_database_url.strip(), settings.data_database)
        return f"sql {url.render_as_string(hide_password=True)}"
    return f"file {settings.feast_dir / 'registry.db'}"


def describe_online_store(settings: DataPipelineSettings) -> str:
    return redact(settings.online_store_url)


def apply(settings: DataPipelineSettings | None = None) -> ApplyResult:
    """``feast apply`` of the feature repository with the settings' configuration.

    Idempotent: applying unchanged definitions changes nothing; objects removed from the
    repository are removed from the registry (and their online tables), as ``feast apply`` does.
    """
    from feast import Project
    from feast.repo_operations import apply_total_with_repo_instance

    from data_pipeline.settings import DataPipelineSettings

    settings = settings or DataPipelineSettings()
    began = time.perf_counter()
    repo = load_repo(settings.feature_repo)
    project = settings.mlops_feast_project
    if not repo.projects:
        repo.projects.append(Project(name=project, description=""))
    elif len(repo.projects) > 1 or repo.projects[0].name != project:
        names = ", ".join(p.name for p in repo.projects)
        raise ValueError(f"the feature repository defines project(s) {names}; expected {project}")
    store = feature_store(settings)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        apply_total_with_repo_instance(
            store, project, store.registry, repo, skip_source_validation=False
        )
    return ApplyResult(
        project=project,
        registry=describe_registry(settings),
        online_store=describe_online_store(settings),
        entities=sorted(e.name for e in repo.entities if e.name != "__dummy"),
        feature_views=sorted(v.name for v in repo.feature_views),
        feature_services=sorted(s.name for s in repo.feature_services),
        data_sources=sorted(s.name for s in repo.data_sources),
        seconds=time.perf_counter() - began,
        output=out.getvalue(),
    )
