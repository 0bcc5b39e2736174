"""MLflow tracking server with the model registry, UI and proxied artifact store."""

from __future__ import annotations

from mlops_common.postgres import database_url, ensure_database
from mlops_platform.launcher.services.base import Context, HttpService, Program


class MlflowService(HttpService):
    name = "mlflow"
    description = "MLflow tracking server, model registry and UI"
    start_timeout = 90.0
    health_path = "/health"
    health_text = "OK"

    def port(self, ctx: Context) -> int:
        return ctx.settings.mlflow_port

    def backend_store_uri(self, ctx: Context) -> str:
        server = ctx.settings.mlops_database_url
        if server:
            url = database_url(server, ctx.settings.database_name("mlflow"))
            return url.render_as_string(hide_password=False)
        return f"sqlite:///{ctx.data_dir / self.name / 'mlflow.db'}"

    def prepare(self, ctx: Context) -> None:
        state = ctx.state_dir(self.name)
        (state / "artifacts").mkdir(exist_ok=True)
        (state / "prometheus").mkdir(exist_ok=True)
        server, name = ctx.settings.mlops_database_url, ctx.settings.database_name("mlflow")
        if server and ensure_database(server, name):
            print(f"  created PostgreSQL database {name}", flush=True)

    def programs(self, ctx: Context) -> list[Program]:
        state = ctx.data_dir / self.name
        s = ctx.settings
        return [
            Program(
                name="mlflow",
                command=[
                    ctx.venv_bin("mlflow"),
                    "server",
                    "--host",
                    s.mlops_bind_host,
                    "--port",
                    str(s.mlflow_port),
                    "--workers",
                    "1",
                    "--serve-artifacts",
                    "--artifacts-destination",
                    str(state / "artifacts"),
                    "--expose-prometheus",
                    str(state / "prometheus"),
                ],
                # the store URI carries the PostgreSQL password: environment (0600 env file),
                # never argv, which every user of the machine can read
                environment={
                    "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri(ctx),
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                    "PROMETHEUS_MULTIPROC_DIR": str(state / "prometheus"),
                },
            )
        ]

    def endpoints(self, ctx: Context) -> list[str]:
        host = ctx.settings.mlops_bind_host
        return [f"MLflow UI and API   {self.url(ctx)}  (no login; bound to {host})"]
