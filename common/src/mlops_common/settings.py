"""The settings base every component builds its one settings object on.

One rule for each thing the components share:

- **the env file**: ``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory; the
  process environment wins over it, keyword arguments win over both, empty values count as unset;
- **the data directory**: ``MLOPS_DATA_DIR`` (default ``.mlops`` in the working directory); a
  component's places below it are declared as ``DataPath`` attributes (``<data_dir>/<parts>``);
- **Redis**: ``MLOPS_REDIS_URL``, else ``MLOPS_ONLINE_STORE_URL`` when it is a Redis URL, else
  (for the processes that may use it) the platform's own redis-server
  ``redis://<MLOPS_BIND_HOST>:<REDIS_PORT>/0``; a component's own, more specific URL comes first
  (:meth:`PlatformSettings.redis_url`);
- **MLflow**: ``MLFLOW_TRACKING_URI``, else the platform's MLflow at
  ``http://<MLOPS_BIND_HOST>:<MLFLOW_PORT>`` (never a stray ``./mlruns``);
- **PostgreSQL**: ``MLOPS_DATABASE_URL`` (a server URL) and ``MLOPS_DATABASE_PREFIX``: component
  ``x`` keeps its data in the database ``<prefix>_x`` on that server.

The shared fields are named after their environment variables and read from exactly those names
(a subclass's ``env_prefix`` does not apply to them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self, overload

from pydantic import AliasChoices, Field
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_FILE_VARIABLE = "MLOPS_ENV_FILE"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: where the launcher's own redis-server listens unless REDIS_PORT says otherwise
DEFAULT_REDIS_PORT = 6380
DEFAULT_MLFLOW_PORT = 5000
_ANY_ADDRESS = ("", "0.0.0.0", "::")
#: stands for "the env file of the one rule" in ``model_config``; ``_env_file=None`` reads none
_RULE = Path("<MLOPS_ENV_FILE or .env>")


def env_file() -> Path:
    """The env file: ``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory."""
    override = os.environ.get(ENV_FILE_VARIABLE, "").strip()
    return Path(override) if override else Path(".env")


class DataPath:
    """A place below the data directory, as a read-only class attribute of a settings class:
    ``state_dir: ClassVar[DataPath] = DataPath("serving")`` reads as ``<data_dir>/serving``, and
    ``cache_dir: ClassVar[DataPath] = state_dir / "model-cache"`` as
    ``<data_dir>/serving/model-cache`` (``ClassVar``: not a field, pydantic leaves it alone)."""

    def __init__(self, *parts: str, doc: str = "") -> None:
        self.parts = parts
        self.__doc__ = doc or f"``<MLOPS_DATA_DIR>/{'/'.join(parts)}``"

    def __truediv__(self, part: str) -> DataPath:
        return DataPath(*self.parts, part)

    @overload
    def __get__(self, settings: None, owner: type[Any]) -> DataPath: ...

    @overload
    def __get__(self, settings: PlatformSettings, owner: type[Any]) -> Path: ...

    def __get__(self, settings: PlatformSettings | None, owner: type[Any]) -> DataPath | Path:
        if settings is None:
            return self
        return settings.data_dir.joinpath(*self.parts)


class PlatformSettings(BaseSettings):
    """The fields and rules every component shares; subclass it, add the component's own."""

    model_config = SettingsConfigDict(
        extra="ignore",
        env_file=_RULE,
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        populate_by_name=True,
    )

    mlops_data_dir: Path = Field(
        default=Path(".mlops"), validation_alias=AliasChoices("MLOPS_DATA_DIR")
    )
    mlops_bind_host: str = Field(
        default="127.0.0.1", validation_alias=AliasChoices("MLOPS_BIND_HOST")
    )
    mlops_online_store_url: str = Field(
        default="", validation_alias=AliasChoices("MLOPS_ONLINE_STORE_URL")
    )
    mlops_redis_url: str = Field(default="", validation_alias=AliasChoices("MLOPS_REDIS_URL"))
    redis_port: int = Field(
        default=DEFAULT_REDIS_PORT, ge=1, le=65535, validation_alias=AliasChoices("REDIS_PORT")
    )
    mlflow_tracking_uri: str = Field(
        default="", validation_alias=AliasChoices("MLFLOW_TRACKING_URI")
    )
    mlflow_port: int = Field(
        default=DEFAULT_MLFLOW_PORT, ge=1, le=65535, validation_alias=AliasChoices("MLFLOW_PORT")
    )
    mlops_database_url: str = Field(default="", validation_alias=AliasChoices("MLOPS_DATABASE_URL"))
    mlops_database_prefix: str = Field(
        default="mlops", validation_alias=AliasChoices("MLOPS_DATABASE_PREFIX")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the environment, then the env file of the one rule (unless
        the caller named one, or none, with ``_env_file``)."""
        if getattr(dotenv_settings, "env_file", None) == _RULE:
            dotenv_settings = DotEnvSettingsSource(settings_cls, env_file=env_file())
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @classmethod
    def load(cls, **values: Any) -> Self:
        """Settings from the environment and the env file; ``values`` (field names) win; a value
        of None counts as not given."""
        given = {key: value for key, value in values.items() if value is not None}
        return cls(**given)

    # --- the shared rules -------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        """The platform's data directory, absolute."""
        return self.mlops_data_dir.expanduser().resolve()

    @property
    def loopback_host(self) -> str:
        """The host to reach a platform server at: the bind host, 127.0.0.1 for any address."""
        host = self.mlops_bind_host.strip()
        return "127.0.0.1" if host in _ANY_ADDRESS else host

    @property
    def own_redis_url(self) -> str:
        """The launcher's own redis-server."""
        return f"redis://{self.loopback_host}:{self.redis_port}/0"

    def redis_url(self, *preferred: str, own_server: bool = False) -> str:
        """The Redis to use: the first non-empty of ``preferred`` (a component's own setting),
        else ``MLOPS_REDIS_URL``, else ``MLOPS_ONLINE_STORE_URL`` when it is a Redis URL, else
        the launcher's own redis-server when ``own_server``, else "" (no Redis)."""
        for candidate in (*preferred, self.mlops_redis_url):
            if candidate.strip():
                return candidate.strip()
        online = self.mlops_online_store_url.strip()
        if online.startswith(REDIS_SCHEMES):
            return online
        return self.own_redis_url if own_server else ""

    @property
    def online_store_url(self) -> str:
        """Feast's online store: ``MLOPS_ONLINE_STORE_URL``, else ``MLOPS_REDIS_URL``, else the
        launcher's own redis-server."""
        return (
            self.mlops_online_store_url.strip()
            or self.mlops_redis_url.strip()
            or self.own_redis_url
        )

    @property
    def tracking_uri(self) -> str:
        """MLflow: ``MLFLOW_TRACKING_URI``, else the platform's MLflow on its port."""
        return self.mlflow_tracking_uri.strip() or f"http://{self.loopback_host}:{self.mlflow_port}"

    @property
    def uses_postgres(self) -> bool:
        return bool(self.mlops_database_url.strip())

    def database_name(self, component: str) -> str:
        """The database of ``component`` on the configured server: ``<prefix>_<component>``."""
        return f"{self.mlops_database_prefix}_{component}"
