"""The monitoring service: ``monitoring-service serve`` (FastAPI on uvicorn, one worker).

It consumes serving's prediction and feedback events from Redis (the same Redis serving writes
to: ``MLOPS_REDIS_URL``, else the platform's own redis-server, both passed to every process as
``MLOPS_REDIS_URL`` / ``MLOPS_ONLINE_STORE_URL``), evaluates drift and quality per window with
Evidently against the champion's reference data in MLflow, exports it all on ``/metrics``
(Prometheus job ``monitoring``), and receives Alertmanager's webhook to trigger the training
DAG through Airflow's REST API (``MONITORING_WEBHOOK_SECRET`` and the Airflow admin
credentials from the env file).

Without any Redis (the embedded SQLite online store) there are no events: the service then
runs nothing and says so, like the stream service. Health is ``/health/live``; ``/health/ready``
says whether the champion's reference is loaded. State (SQLite, reports) lives under
``<data dir>/monitoring``.
"""

from __future__ import annotations

from mlops_platform.launcher.health import Health
from mlops_platform.launcher.online_store import online_store_kind
from mlops_platform.launcher.services.base import Check, Context, HttpService, Program

NO_EVENTS = "no Redis for serving's event streams (the online store is the embedded SQLite one)"


class MonitoringService(HttpService):
    name = "monitoring"
    description = "monitoring service: drift and quality per window (Evidently), retraining trigger"
    depends_on = ("feast", "mlflow")
    start_timeout = 90.0

    @staticmethod
    def has_events(ctx: Context) -> bool:
        return ctx.settings.mlops_runtime == "docker" or online_store_kind(ctx.settings) != "sqlite"

    def prepare(self, ctx: Context) -> None:
        ctx.state_dir(self.name)
        ctx.require(ctx.settings.monitoring_webhook_secret, "MONITORING_WEBHOOK_SECRET")
        if not self.has_events(ctx):
            print(
                f"  {NO_EVENTS}: monitoring is disabled; install redis-server (the feast "
                "service then runs one) or set MLOPS_REDIS_URL",
                flush=True,
            )

    def port(self, ctx: Context) -> int:
        return ctx.settings.monitoring_port

    def programs(self, ctx: Context) -> list[Program]:
        if not self.has_events(ctx):
            return []
        s = ctx.settings
        environment = {
            "MONITORING_PORT": str(self.port(ctx)),
            "MONITORING_WEBHOOK_SECRET": s.monitoring_webhook_secret.get_secret_value(),
            "MONITORING_AIRFLOW_URL": s.url(s.airflow_port),
            "AIRFLOW_ADMIN_USER": s.airflow_admin_user,
            "AIRFLOW_ADMIN_PASSWORD": s.airflow_admin_password.get_secret_value(),
            # a stable consumer name: a restarted service resumes its pending entries
            "MONITORING_CONSUMER_NAME": "monitoring-1",
        }
        return [self.api_program(ctx, "monitoring-service", environment, stop_wait_seconds=30)]

    def checks(self, ctx: Context) -> list[Check]:
        if not self.has_events(ctx):
            return [Check(self.name, lambda: Health(True, f"disabled: {NO_EVENTS}"))]
        return super().checks(ctx)

    def scrape_targets(self, ctx: Context) -> dict[str, list[str]]:
        return super().scrape_targets(ctx) if self.has_events(ctx) else {}

    def endpoints(self, ctx: Context) -> list[str]:
        if not self.has_events(ctx):
            return [f"Monitoring          disabled ({NO_EVENTS})"]
        url = self.url(ctx)
        return [
            f"Monitoring          {url}/v1/windows  (reports {url}/reports, metrics "
            f"{url}/metrics, readiness {url}/health/ready)",
            f"Retraining webhook  {url}/v1/retraining/webhook  (Authorization: Bearer "
            f"MONITORING_WEBHOOK_SECRET in {ctx.env_file})",
        ]
