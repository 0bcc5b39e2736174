"""Example traffic: the example company's dispatcher calling the prediction API.

One program, ``example-project dispatch`` (``example_project.dispatcher``): bookings
at ``MLOPS_DISPATCH_RATE`` a second ranked by ``POST /v1/predict``, each trip's outcome drawn from
the example world's true model and reported with ``POST /v1/feedback`` after a label delay. It is
what fills the serving, drift and quality dashboards on a fresh platform and what the monitoring
service's quality metrics are computed from. Until serving has a champion its predictions answer
503 and the dispatcher just counts them.

Healthy when its ``/metrics`` answers (``DISPATCH_METRICS_PORT``, default 8313). Switch it off with
``./run.sh traffic down``; the rest of the platform does not depend on it.
"""

from __future__ import annotations

from pydantic import Field

from mlops_platform.launcher.health import http_probe
from mlops_platform.launcher.services.base import Check, Context, Program, Service
from mlops_platform.launcher.settings import LauncherEnvSettings


class TrafficSettings(LauncherEnvSettings):
    """The traffic service's own entry of the env file (environment first)."""

    dispatch_metrics_port: int = Field(default=8313, ge=1, le=65535)


class TrafficService(Service):
    name = "traffic"
    description = "example traffic: the example company's bookings and trip outcomes"
    depends_on = ("serving",)
    start_timeout = 60.0

    def programs(self, ctx: Context) -> list[Program]:
        s = ctx.settings
        port = TrafficSettings.load(ctx).dispatch_metrics_port
        return [
            Program(
                "dispatcher",
                [ctx.venv_bin("example-project"), "dispatch"],
                {
                    "DISPATCH_METRICS_PORT": str(port),
                    "SERVING_PORT": str(s.serving_port),
                    "SERVING_API_KEY": s.serving_api_key.get_secret_value(),
                    # Feast imports setproctitle, which would blank the MLOPS_INSTANCE tag
                    "SPT_NOENV": "1",
                },
                stop_wait_seconds=40,
            )
        ]

    def checks(self, ctx: Context) -> list[Check]:
        url = ctx.settings.url(TrafficSettings.load(ctx).dispatch_metrics_port)
        return [Check("dispatcher", http_probe(f"{url}/metrics", expect_text="dispatch_bookings"))]

    def scrape_targets(self, ctx: Context) -> dict[str, list[str]]:
        return ctx.scrape_target("traffic", TrafficSettings.load(ctx).dispatch_metrics_port)

    def endpoints(self, ctx: Context) -> list[str]:
        url = ctx.settings.url(TrafficSettings.load(ctx).dispatch_metrics_port)
        return [f"Example traffic     {url}/metrics  (bookings and trip outcomes)"]
