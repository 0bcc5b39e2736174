"""Prometheus, Alertmanager and the StatsD exporter (Grafana runs in the docker runtime only)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import yaml

from mlops_platform.launcher.health import http_probe
from mlops_platform.launcher.paths import PLATFORM_DIR
from mlops_platform.launcher.services.base import Check, Context, Program, Service
from mlops_platform.launcher.system_packages import ensure_binaries
from mlops_platform.observability import alerting

BINARIES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def render_prometheus_config(source: Path, target_dir: Path) -> dict[str, object]:
    """The repo's prometheus.yml with rule files made absolute and file_sd pointed at
    `target_dir` (where the local runtime writes one <job>.json per running service)."""
    config: dict[str, object] = yaml.safe_load(source.read_text())
    base = source.parent
    rule_files = config.get("rule_files") or []
    assert isinstance(rule_files, list)
    config["rule_files"] = [str((base / pattern).resolve()) for pattern in rule_files]

    def retarget(sd_configs: list[dict[str, list[str]]]) -> None:
        for sd in sd_configs:
            sd["files"] = [str(target_dir / Path(f).name) for f in sd.get("files", [])]

    for job in config.get("scrape_configs") or []:  # type: ignore[attr-defined]
        retarget(job.get("file_sd_configs", []))
    alerting = config.get("alerting") or {}
    for am in alerting.get("alertmanagers", []):  # type: ignore[attr-defined]
        retarget(am.get("file_sd_configs", []))
    return config


class PrometheusService(Service):
    name = "prom-graf"
    description = "Prometheus, Alertmanager and the Airflow StatsD exporter"
    start_timeout = 60.0

    def prepare(self, ctx: Context) -> None:
        ensure_binaries(BINARIES)
        state = ctx.state_dir(self.name)
        targets = state / "targets"
        targets.mkdir(exist_ok=True)
        config = render_prometheus_config(PLATFORM_DIR / "prometheus" / "prometheus.yml", targets)
        (state / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        for sub in ("prometheus-data", "alertmanager-data"):
            (state / sub).mkdir(exist_ok=True)
        alerting.write_config(self.alertmanager_config(ctx), state / "alertmanager.yml")

    @staticmethod
    def alertmanager_config(ctx: Context) -> dict[str, object]:
        """The committed alertmanager.yml for this machine: the retraining webhook to the local
        monitoring service, its token and the optional receivers from the env file."""
        s = ctx.settings
        return alerting.render(
            alerting.load_base(),
            alerting.AlertingSettings.load(ctx.env_file),
            webhook_url=f"{s.url(s.monitoring_port)}{alerting.RETRAIN_PATH}",
            webhook_secret=s.monitoring_webhook_secret.get_secret_value(),
        )

    def programs(self, ctx: Context) -> list[Program]:
        s = ctx.settings
        state = ctx.data_dir / self.name
        host = s.mlops_bind_host
        am_config = state / "alertmanager.yml"
        rendered = yaml.safe_dump(self.alertmanager_config(ctx), sort_keys=True).encode()
        digest = hashlib.sha256(rendered).hexdigest()[:16]
        return [
            Program(
                "prometheus",
                [
                    "/usr/bin/prometheus",
                    f"--config.file={state / 'prometheus.yml'}",
                    f"--storage.tsdb.path={state / 'prometheus-data'}",
                    "--storage.tsdb.retention.time=15d",
                    f"--web.listen-address={host}:{s.prometheus_port}",
                    f"--web.external-url=http://{host}:{s.prometheus_port}/",
                    "--web.enable-lifecycle",
                ],
            ),
            Program(
                "alertmanager",
                [
                    "/usr/bin/prometheus-alertmanager",
                    f"--config.file={am_config}",
                    f"--storage.path={state / 'alertmanager-data'}",
                    f"--web.listen-address={host}:{s.alertmanager_port}",
                    f"--web.external-url=http://{host}:{s.alertmanager_port}/",
                    "--cluster.listen-address=",
                ],
                # a changed rendered config (a new webhook secret, Slack configured) restarts it
                {"MLOPS_CONFIG_DIGEST": digest},
            ),
            # Debian has no statsd_exporter package: the platform's own bridge reads the same
            # mapping file (the docker runtime runs the upstream prom/statsd-exporter image).
            Program(
                "statsd-exporter",
                [
                    sys.executable,
                    "-m",
                    "mlops_platform.observability.statsd_bridge",
                    f"--web.listen-address={host}:{s.statsd_exporter_port}",
                    f"--statsd.listen-udp={host}:{s.statsd_port}",
                    f"--statsd.mapping-config={PLATFORM_DIR / 'prometheus' / 'statsd_mapping.yml'}",
                ],
            ),
        ]

    def checks(self, ctx: Context) -> list[Check]:
        s = ctx.settings
        return [
            Check("prometheus", http_probe(f"{s.url(s.prometheus_port)}/-/ready")),
            Check("alertmanager", http_probe(f"{s.url(s.alertmanager_port)}/-/ready")),
            Check("statsd-exporter", http_probe(f"{s.url(s.statsd_exporter_port)}/metrics")),
        ]

    def scrape_targets(self, ctx: Context) -> dict[str, list[str]]:
        s = ctx.settings
        host = s.mlops_bind_host
        return {
            "prometheus": [f"{host}:{s.prometheus_port}"],
            "alertmanager": [f"{host}:{s.alertmanager_port}"],
            "airflow": [f"{host}:{s.statsd_exporter_port}"],
        }

    def endpoints(self, ctx: Context) -> list[str]:
        s = ctx.settings
        return [
            f"Prometheus          {s.url(s.prometheus_port)}",
            f"Alertmanager        {s.url(s.alertmanager_port)}",
            "Grafana             docker runtime only "
            f"(http://127.0.0.1:{s.grafana_port}, user {s.grafana_admin_user}, "
            f"password GRAFANA_ADMIN_PASSWORD in {ctx.env_file})",
        ]
