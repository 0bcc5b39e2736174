"""Which Feast online store the platform uses, decided from the settings and the machine."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from mlops_platform.launcher.settings import PlatformSettings

OnlineStoreKind = Literal["external-redis", "local-redis", "sqlite"]


def online_store_kind(settings: PlatformSettings) -> OnlineStoreKind:
    """External Redis when configured; else the platform's own redis-server when the binary
    exists (the feast service installs it when it can); else the embedded SQLite store."""
    if settings.mlops_redis_url:
        return "external-redis"
    if shutil.which("redis-server"):
        return "local-redis"
    return "sqlite"


def online_store_url(settings: PlatformSettings) -> str:
    """The URL every component reaches the online store at (redis://… or sqlite:///…)."""
    kind = online_store_kind(settings)
    if kind == "external-redis":
        return settings.mlops_redis_url
    if kind == "local-redis":
        return f"redis://{settings.mlops_bind_host}:{settings.redis_port}/0"
    return f"sqlite:///{Path(settings.data_dir) / 'feast' / 'online_store.db'}"
