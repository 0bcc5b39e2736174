"""Airflow 3: api-server, scheduler, dag-processor and triggerer with the LocalExecutor."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from mlops_common.postgres import database_url, ensure_database
from mlops_platform.launcher.health import airflow_probe
from mlops_platform.launcher.paths import COMPONENT_DAG_FOLDERS, REPO_ROOT
from mlops_platform.launcher.private import write_private
from mlops_platform.launcher.services.base import Check, Context, Program, Service

LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
STATSD_CLIENT = "mlops_platform.observability.statsd.client.BoundStatsClient"


def dag_bundles(repo_root: Path = REPO_ROOT) -> list[dict[str, object]]:
    """One LocalDagBundle per component `dags/` folder that exists: DAGs are read in place."""
    return [
        {
            "name": component,
            "classpath": LOCAL_BUNDLE,
            "kwargs": {"path": str(repo_root / component / "dags"), "refresh_interval": 30},
        }
        for component in COMPONENT_DAG_FOLDERS
        if (repo_root / component / "dags").is_dir()
    ]


class AirflowService(Service):
    name = "airflow"
    description = "Airflow 3 (api-server, scheduler, dag-processor, triggerer)"
    depends_on = ()
    start_timeout = 180.0

    def environment(self, ctx: Context) -> dict[str, str]:
        s = ctx.settings
        home = ctx.data_dir / self.name
        if s.mlops_database_url:
            conn = database_url(s.mlops_database_url, s.database_name("airflow")).render_as_string(
                hide_password=False
            )
        else:
            conn = f"sqlite:///{home / 'airflow.db'}"
        env = {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__FERNET_KEY": s.airflow_fernet_key.get_secret_value(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_admin_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": (f"{s.url(s.airflow_port)}/execution/"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": conn,
            "AIRFLOW__API__HOST": s.mlops_bind_host,
            "AIRFLOW__API__PORT": str(s.airflow_port),
            "AIRFLOW__API__BASE_URL": s.url(s.airflow_port),
            "AIRFLOW__API__SECRET_KEY": s.airflow_api_secret_key.get_secret_value(),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": s.airflow_jwt_secret.get_secret_value(),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": s.mlops_bind_host,
            "AIRFLOW__METRICS__STATSD_PORT": str(s.statsd_port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            # sends from the loopback address, not a socket bound to 0.0.0.0
            "AIRFLOW__METRICS__STATSD_CUSTOM_CLIENT_PATH": STATSD_CLIENT,
            # health comes from the api-server's /api/v2/monitor/health: no extra listener
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }
        bundles = dag_bundles()
        if bundles:
            env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(bundles)
        return env

    def prepare(self, ctx: Context) -> None:
        home = ctx.state_dir(self.name)
        (home / "dags").mkdir(exist_ok=True)
        s = ctx.settings
        passwords = home / "passwords.json"
        fd = os.open(passwords, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({s.airflow_admin_user: s.airflow_admin_password.get_secret_value()}, handle)
        database = s.database_name("airflow")
        if s.mlops_database_url and ensure_database(s.mlops_database_url, database):
            print(f"  created PostgreSQL database {database}", flush=True)
        print("  airflow db migrate", flush=True)
        result = subprocess.run(
            [ctx.venv_bin("airflow"), "db", "migrate"],
            env={**os.environ, **ctx.base_environment(), **self.environment(ctx)},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        write_private(home / "db-migrate.log", result.stdout + result.stderr)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
            raise RuntimeError(f"airflow db migrate failed (exit {result.returncode}):\n{tail}")

    def programs(self, ctx: Context) -> list[Program]:
        env = self.environment(ctx)
        airflow = ctx.venv_bin("airflow")
        return [
            Program("airflow-api-server", [airflow, "api-server"], env),
            # --skip-serve-logs: Airflow's log server binds every interface and is only needed
            # when workers run on other hosts; here every component reads the same log folder.
            Program(
                "airflow-scheduler",
                [airflow, "scheduler", "--skip-serve-logs"],
                env,
                stop_wait_seconds=30,
            ),
            Program("airflow-dag-processor", [airflow, "dag-processor"], env),
            Program("airflow-triggerer", [airflow, "triggerer", "--skip-serve-logs"], env),
        ]

    def checks(self, ctx: Context) -> list[Check]:
        return [Check("airflow", airflow_probe(ctx.settings.url(ctx.settings.airflow_port)))]

    def endpoints(self, ctx: Context) -> list[str]:
        s = ctx.settings
        return [
            f"Airflow UI and API  {s.url(s.airflow_port)}  (user {s.airflow_admin_user}, "
            f"password AIRFLOW_ADMIN_PASSWORD in {ctx.env_file})"
        ]
