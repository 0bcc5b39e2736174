"""From a fresh platform to a served champion: what `./run.sh all up` does when nothing is trained.

When the registry has no version with the served alias yet (`MLOPS_BOOTSTRAP=auto`, the default),
`all up` runs the bootstrap plan (`platform/bootstrap.yml`, or `MLOPS_BOOTSTRAP_PLAN`) once the
services the plan `needs` are healthy, while the others are still starting: DAG runs through
Airflow's REST API, one after the other, each with its conf (`{start}` and `{end}` stand for the
history window: the last `history_days` whole UTC hours up to now), then unpauses the DAGs that
keep the platform going and waits until serving answers ready.
A run of a scheduled DAG takes the logical date of the DAG's next scheduled interval when that
interval lies inside the window, so the scheduler does not run that interval a second time.

The platform layer stays generic: DAG ids, confs and the model name are the plan's, not code.
Every step is idempotent, so a bootstrap that failed half-way is simply run again by the next
`up` (there is still no champion).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from mlops_common.airflow import AirflowClient, AirflowError, ScheduledInterval
from mlops_platform.launcher.settings import LauncherSettings


class BootstrapError(RuntimeError):
    """The bootstrap could not finish; the message says which step and why."""


class PlannedRun(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dag: str = Field(min_length=1)
    conf: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=600.0, gt=0)


class BootstrapPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    alias: str = Field(default="champion", min_length=1)
    history_days: int = Field(default=14, ge=1, le=92)
    runs: list[PlannedRun] = Field(min_length=1)
    #: the services the runs need; the bootstrap starts once these are healthy, while the
    #: others are still starting (empty: once every service is up)
    needs: list[str] = Field(default_factory=list)
    unpause: list[str] = Field(default_factory=list)
    serving_ready_timeout_s: float = Field(default=120.0, gt=0)

    @classmethod
    def load(cls, path: Path) -> BootstrapPlan:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise BootstrapError(f"bootstrap plan {path}: {exc}") from None
        try:
            return cls.model_validate(raw)
        except ValueError as exc:
            raise BootstrapError(f"bootstrap plan {path}: {exc}") from None


def history_window(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last `days` days of whole UTC hours: `[end - days, end)`, `end` the current hour."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return end - timedelta(days=days), end


def render_conf(conf: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The conf with `{name}` placeholders in string values replaced (nested values too)."""

    def render(value: Any) -> Any:
        if isinstance(value, str):
            return value.format_map(values)
        if isinstance(value, dict):
            return {key: render(item) for key, item in value.items()}
        if isinstance(value, list):
            return [render(item) for item in value]
        return value

    rendered: dict[str, Any] = render(conf)
    return rendered


def stand_in(
    interval: ScheduledInterval | None, start: datetime, end: datetime
) -> ScheduledInterval | None:
    """The DAG's next scheduled interval when it lies inside the history window `[start, end)`.

    A bootstrap run covers the whole window, so it takes that scheduled run's place (same
    logical date and data interval; the scheduler then creates none) instead of queueing behind
    it: an hourly DAG unpaused for the bootstrap would otherwise first run its latest hour, work
    the bootstrap run repeats (about 40 s of the bootstrap on this machine).
    """
    if interval is None or not (start <= interval.start and interval.end <= end):
        return None
    return interval


def alias_version(mlflow_url: str, model: str, alias: str, timeout: float = 10.0) -> str | None:
    """The version `alias` points at in the registry, None when the model or alias is absent."""
    from mlops_common import registry

    restore = registry.configure_http(timeout)
    try:
        return registry.alias_version(registry.make_client(mlflow_url), model, alias)
    except registry.RegistryUnavailable as exc:
        raise BootstrapError(f"MLflow registry unreachable at {mlflow_url}: {exc}") from None
    finally:
        restore()


def serving_ready(url: str, timeout: float = 3.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return True, response.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return False, exc.read(2000).decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as exc:
        return False, str(getattr(exc, "reason", exc))


@dataclass(frozen=True)
class BootstrapResult:
    ran: bool
    detail: str
    seconds: float = 0.0


def bootstrap(
    settings: LauncherSettings,
    plan: BootstrapPlan,
    *,
    wait_for_serving: bool,
    now: datetime | None = None,
) -> BootstrapResult:
    """Run `plan` unless the registry already has a version under the plan's alias."""
    mlflow_url = settings.tracking_uri
    version = alias_version(mlflow_url, plan.model, plan.alias)
    if version is not None:
        return BootstrapResult(False, f"{plan.model}@{plan.alias} is version {version}")
    began = time.monotonic()
    client = AirflowClient(
        settings.url(settings.airflow_port),
        settings.airflow_admin_user,
        settings.airflow_admin_password.get_secret_value(),
    )
    try:
        run_plan(client, plan, now)
    except AirflowError as exc:
        raise BootstrapError(str(exc)) from None
    version = alias_version(mlflow_url, plan.model, plan.alias)
    if version is None:
        raise BootstrapError(
            f"the plan's DAG runs succeeded but {plan.model}@{plan.alias} is still not set: "
            "the promotion gate did not promote the first version (see the last run's gate task)"
        )
    if wait_for_serving:
        url = f"{settings.url(settings.serving_port)}/health/ready"
        wait_until_ready(url, plan.serving_ready_timeout_s, f"with version {version}")
    seconds = time.monotonic() - began
    return BootstrapResult(True, f"{plan.model}@{plan.alias} is version {version}", seconds)


def run_plan(client: AirflowClient, plan: BootstrapPlan, now: datetime | None = None) -> None:
    """The plan's DAG runs, one after the other over its history window, then its unpauses."""
    start, end = history_window(plan.history_days, now)
    values = {"start": start.isoformat(), "end": end.isoformat()}
    print(
        f"* bootstrap: no {plan.model}@{plan.alias} in the registry yet: running the example "
        f"project from {values['start']} to {values['end']} ({len(plan.runs)} DAG runs)",
        flush=True,
    )
    for planned in plan.runs:
        dag = client.wait_for_dag(planned.dag)
        print(f"  bootstrap: {planned.dag} running", flush=True)
        run = client.run_to_end(
            planned.dag,
            render_conf(planned.conf, values),
            planned.timeout_s,
            stand_in_for=stand_in(ScheduledInterval.next_of(dag), start, end),
        )
        tasks = ", ".join(f"{task} {state}" for task, state in run.tasks.items())
        if run.state != "success":
            raise BootstrapError(
                f"DAG {run.dag_id} run {run.run_id} {run.state} ({tasks}); see its task "
                f"logs in the Airflow UI ({client.base_url}) or ./run.sh airflow logs"
            )
        print(f"  bootstrap: {planned.dag} succeeded in {run.seconds:.0f} s", flush=True)
    for dag_id in plan.unpause:
        client.wait_for_dag(dag_id)
        client.unpause(dag_id)
    if plan.unpause:
        print(f"  bootstrap: unpaused {', '.join(plan.unpause)}", flush=True)


def wait_until_ready(url: str, timeout_s: float, what: str) -> None:
    """Poll serving's readiness at `url` until it answers 200, or raise after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    ready, detail = serving_ready(url)
    while not ready:
        if time.monotonic() > deadline:
            raise BootstrapError(f"serving is not ready {what}: {detail}")
        time.sleep(2)
        ready, detail = serving_ready(url)


class BackgroundBootstrap:
    """The bootstrap in a thread, started as soon as every service of the plan's `needs` is
    healthy, so its DAG runs overlap the start of the services they do not need.

    `service_healthy` is the runtime's callback after each healthy service; `finish` waits for
    the bootstrap (running it now if it never started) and raises what the thread raised.
    """

    def __init__(self, settings: LauncherSettings, plan: BootstrapPlan) -> None:
        self.settings = settings
        self.plan = plan
        self._healthy: set[str] = set()
        self._thread: threading.Thread | None = None
        self._result: BootstrapResult | None = None
        self._error: BaseException | None = None

    def service_healthy(self, name: str) -> None:
        self._healthy.add(name)
        if self._thread is None and self.plan.needs and set(self.plan.needs) <= self._healthy:
            self._thread = threading.Thread(target=self._run, name="bootstrap", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._result = bootstrap(self.settings, self.plan, wait_for_serving=True)
        except BaseException as exc:  # re-raised in the main thread by finish()
            self._error = exc

    def finish(self) -> BootstrapResult:
        if self._thread is None:
            self._run()
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise BootstrapError("the bootstrap ended without a result")
        return self._result
