"""Which Feast online store the platform uses, decided from the settings and the machine."""

from __future__ import annotations

import shutil
from typing import Literal

from mlops_platform.launcher.settings import LauncherSettings

OnlineStoreKind = Literal["external-redis", "local-redis", "sqlite"]


def online_store_kind(settings: LauncherSettings) -> OnlineStoreKind:
    """External Redis when configured (the shared Redis rule); else the platform's own
    redis-server when the binary exists (the feast service installs it when it can); else the
    embedded SQLite store."""
    if settings.redis_url():
        return "external-redis"
    if shutil.which("redis-server"):
        return "local-redis"
    return "sqlite"


def online_store_url(settings: LauncherSettings) -> str:
    """The URL every component reaches the online store at (redis://… or sqlite:///…)."""
    if online_store_kind(settings) == "sqlite":
        return f"sqlite:///{settings.data_dir / 'feast' / 'online_store.db'}"
    return settings.redis_url(own_server=True)
