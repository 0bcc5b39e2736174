"""Where the platform's Feast feature store is: one configuration every process builds alike.

``feature_store(settings)`` gives the ``feast.FeatureStore`` of the platform (needs
``mlops-common[feast]``); the definitions (entities, views, services) live in the data
pipeline's feature repository, and consumers ask the store for a named feature service.

- project: ``MLOPS_FEAST_PROJECT``;
- registry: the SQL registry in the database ``<prefix>_data`` when ``MLOPS_DATABASE_URL`` is
  set, else the file ``<data_dir>/feast/registry.db``;
- online store: Redis or SQLite, from the one online store URL rule
  (``PlatformSettings.online_store_url``);
- offline store: parquet files under ``<data_dir>/offline``; ``repo_path`` is the data
  directory, so a ``FileSource`` path stored relative in the shared registry
  (``offline/<view>``) resolves against each process's own ``MLOPS_DATA_DIR`` — no absolute
  path of one machine or container ends up in the registry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlparse

from pydantic import AliasChoices, Field, field_validator

from mlops_common.settings import DataPath, PlatformSettings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

#: How long a process caches the registry before re-reading it.
REGISTRY_CACHE_TTL_SECONDS = 60
#: the offline store's root, relative to the data directory
OFFLINE_DIR = "offline"

_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,62}$")
_STORE_SCHEMES = ("redis://", "rediss://", "sqlite:///")


class FeatureStoreSettings(PlatformSettings):
    """The platform settings plus the Feast project: what a process needs to open the store."""

    mlops_feast_project: str = Field(
        default="driver_ranking", validation_alias=AliasChoices("MLOPS_FEAST_PROJECT")
    )

    @field_validator("mlops_feast_project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not _PROJECT_NAME.match(value):
            raise ValueError(
                "MLOPS_FEAST_PROJECT must be 1-63 letters, digits and underscores, starting with "
                f"a letter or digit (got {value!r})"
            )
        return value

    @field_validator("mlops_online_store_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(_STORE_SCHEMES):
            raise ValueError(f"expected a redis://, rediss:// or sqlite:/// URL (got {value!r})")
        return value

    #: Feast's local state: ``<data_dir>/feast`` (file registry, SQLite online store)
    feast_dir: ClassVar[DataPath] = DataPath("feast")
    #: the offline store's root: ``<data_dir>/offline``
    offline_dir: ClassVar[DataPath] = DataPath(OFFLINE_DIR)

    @property
    def data_database(self) -> str:
        """The database of the data (registry, example source) on the configured server."""
        return self.database_name("data")


def registry_config(settings: FeatureStoreSettings) -> dict[str, Any]:
    """The registry: SQL registry in ``<prefix>_data`` with PostgreSQL, else a local file."""
    if settings.uses_postgres:
        from mlops_common.postgres import database_url

        url = database_url(settings.mlops_database_url.strip(), settings.data_database, "psycopg")
        return {
            "registry_type": "sql",
            "path": url.render_as_string(hide_password=False),
            "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
            "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True},
        }
    return {
        "registry_type": "file",
        "path": str(settings.feast_dir / "registry.db"),
        "cache_ttl_seconds": REGISTRY_CACHE_TTL_SECONDS,
    }


def online_store_config(url: str) -> dict[str, Any]:
    """Feast's online store configuration of a ``redis://`` / ``rediss://`` / ``sqlite:///`` URL."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:////abs/path.db is absolute, sqlite:///rel.db relative
        path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
        if not path or path.endswith("/"):
            raise ValueError(f"online store URL {url!r} names no SQLite file")
        return {"type": "sqlite", "path": path}
    if parsed.scheme in ("redis", "rediss"):
        return {"type": "redis", "connection_string": _redis_connection_string(url)}
    raise ValueError(
        f"unsupported online store URL {url!r}: expected redis://, rediss://, sqlite:///"
    )


def _redis_connection_string(url: str) -> str:
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or 6379
    db_text = (parsed.path or "/0").strip("/") or "0"
    if not db_text.isdigit():
        raise ValueError(f"online store URL {url!r}: the database must be a number")
    parts = [f"{host}:{port}", f"db={int(db_text)}"]
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss" or parse_qs(parsed.query).get("ssl") == ["true"]:
        parts.append("ssl=true")
    if any("," in part for part in parts):
        raise ValueError(f"online store URL {url!r}: commas are not supported in it")
    return ",".join(parts)


def repo_config(settings: FeatureStoreSettings) -> RepoConfig:
    """The feature store's configuration, built from the settings (no ``feature_store.yaml``)."""
    from feast.repo_config import RepoConfig

    if settings.uses_postgres:
        from mlops_common.postgres import ensure_database

        ensure_database(settings.mlops_database_url.strip(), settings.data_database)
    else:
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
    online = online_store_config(settings.online_store_url)
    if online["type"] == "sqlite":
        Path(online["path"]).parent.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=settings.mlops_feast_project,
        provider="local",
        registry=registry_config(settings),
        online_store=online,
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=settings.data_dir,
    )


def feature_store(settings: FeatureStoreSettings | None = None) -> FeatureStore:
    """The platform's feature store (the settings' project, registry and stores)."""
    from feast import FeatureStore

    settings = settings or FeatureStoreSettings.load()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(settings.data_dir), config=repo_config(settings))


def offline_path(settings: PlatformSettings, source_path: str) -> Path:
    """Where a ``FileSource`` path of the registry lives for this process (relative paths are
    under the data directory, see the module docstring)."""
    path = Path(source_path)
    return path if path.is_absolute() else settings.data_dir / path
