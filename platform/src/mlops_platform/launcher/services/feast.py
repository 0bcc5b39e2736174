"""The Feast online store: an external Redis, the platform's own redis-server, or SQLite."""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

from mlops_platform.launcher.health import Health, redis_probe
from mlops_platform.launcher.online_store import online_store_kind, online_store_url
from mlops_platform.launcher.services.base import Check, Context, Program, Service
from mlops_platform.launcher.system_packages import MissingSystemPackage, ensure_binaries


class FeastOnlineStoreService(Service):
    name = "feast"
    description = "Feast online store (Redis, or SQLite when no redis-server exists)"
    start_timeout = 30.0

    def prepare(self, ctx: Context) -> None:
        ctx.state_dir(self.name)
        if not ctx.settings.redis_url():
            try:
                ensure_binaries({"redis-server": "redis-server"})
            except MissingSystemPackage as exc:
                print(f"  {exc}; using the embedded SQLite online store", flush=True)

    def programs(self, ctx: Context) -> list[Program]:
        if online_store_kind(ctx.settings) != "local-redis":
            return []
        state = ctx.data_dir / self.name
        return [
            Program(
                name="feast-redis",
                command=[
                    str(shutil.which("redis-server")),
                    "--bind",
                    ctx.settings.mlops_bind_host,
                    "--port",
                    str(ctx.settings.redis_port),
                    "--dir",
                    str(state),
                    "--daemonize",
                    "no",
                    "--save",
                    "60 1000",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                    "--logfile",
                    "",
                ],
            )
        ]

    def checks(self, ctx: Context) -> list[Check]:
        kind = online_store_kind(ctx.settings)
        if kind == "sqlite":
            path = ctx.data_dir / "feast"
            return [Check("feast", lambda: Health(path.is_dir(), f"SQLite online store in {path}"))]
        parsed = urlparse(online_store_url(ctx.settings))
        return [Check("feast", redis_probe(parsed.hostname or "127.0.0.1", parsed.port or 6379))]

    def endpoints(self, ctx: Context) -> list[str]:
        url, kind = online_store_url(ctx.settings), online_store_kind(ctx.settings)
        return [f"Feast online store  {url}  ({kind})"]
