"""Alertmanager's configuration for a runtime: the committed file plus what only `.env` knows.

`platform/alertmanager/alertmanager.yml` is complete for the docker runtime as committed (the
retraining webhook goes to `http://monitoring:8309`, its bearer token is the compose secret
`monitoring_webhook_secret`). Alertmanager reads no environment variables, so the launcher
renders the file for the runtime it starts:

- the retraining webhook's URL (the local runtime: the monitoring service on the bind address
  and `MONITORING_PORT`) and its token (`MONITORING_WEBHOOK_SECRET`);
- optional delivery, inactive while the variables are empty: Slack
  (`ALERT_SLACK_WEBHOOK_URL`, `ALERT_SLACK_CHANNEL`) for `critical` and `warning` alerts, and
  e-mail (`ALERT_EMAIL_TO`, `ALERT_EMAIL_FROM`, `ALERT_SMTP_SMARTHOST`, `ALERT_SMTP_USERNAME`,
  `ALERT_SMTP_AUTH_PASS`) for `critical` ones.

Secrets: the local runtime's rendering holds them inline (Alertmanager runs as the launcher's
user; the file is written with mode 0600 into the git-ignored data folder). The docker runtime's
holds none: it names the files compose mounts from `.env` as secrets (`/run/secrets/...`), so the
container's unprivileged user can read the configuration.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr

from mlops_platform.launcher.paths import PLATFORM_DIR
from mlops_platform.launcher.settings import LauncherEnvSettings

ALERTMANAGER_YML = PLATFORM_DIR / "alertmanager" / "alertmanager.yml"
RETRAIN_RECEIVER = "retrain"
#: receivers that get the optional Slack / e-mail integrations
SLACK_RECEIVERS = ("critical", "default")
EMAIL_RECEIVERS = ("critical",)
#: the retraining trigger's route on the monitoring service
RETRAIN_PATH = "/v1/retraining/webhook"
#: where compose mounts the optional receivers' secrets in the alertmanager container
SECRETS_DIR = "/run/secrets"


class AlertingSettings(LauncherEnvSettings):
    """The alert delivery entries of the env file (environment first; empty means unset)."""

    alert_slack_webhook_url: SecretStr = Field(default=SecretStr(""))
    alert_slack_channel: str = "#mlops-alerts"
    alert_email_to: str = ""
    alert_email_from: str = "alertmanager@localhost"
    alert_smtp_smarthost: str = ""
    alert_smtp_username: str = ""
    alert_smtp_auth_pass: SecretStr = Field(default=SecretStr(""))
    alert_smtp_require_tls: bool = True


def load_base(path: Path = ALERTMANAGER_YML) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return config


def _receiver(config: dict[str, Any], name: str) -> dict[str, Any]:
    for receiver in config.get("receivers", []):
        if receiver.get("name") == name:
            found: dict[str, Any] = receiver
            return found
    raise KeyError(f"alertmanager.yml has no receiver {name!r}")


def render(
    base: dict[str, Any],
    alerting: AlertingSettings,
    *,
    webhook_url: str | None,
    webhook_secret: str | None,
) -> dict[str, Any]:
    """`base` for a runtime.

    Local runtime: `webhook_url` and `webhook_secret` given: the retraining webhook points there
    with the token inline, as are the optional receivers' secrets. Docker runtime: both None:
    the committed webhook (URL and compose secret file) stays, and the optional receivers read
    their secrets from the files compose mounts (`/run/secrets/alert_slack_webhook_url`,
    `/run/secrets/alert_smtp_auth_pass`).
    """
    config = copy.deepcopy(base)
    inline = webhook_secret is not None
    for hook in _receiver(config, RETRAIN_RECEIVER).get("webhook_configs", []):
        if webhook_url is not None:
            hook["url"] = webhook_url
        if webhook_secret:
            hook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials": webhook_secret}
            }
    slack = _slack_config(alerting, inline=inline)
    if slack:
        for name in SLACK_RECEIVERS:
            _receiver(config, name)["slack_configs"] = [dict(slack)]  # no YAML alias
    email = _email_config(alerting, inline=inline)
    if email:
        for name in EMAIL_RECEIVERS:
            _receiver(config, name)["email_configs"] = [email]
    return config


def _slack_config(alerting: AlertingSettings, *, inline: bool) -> dict[str, Any] | None:
    """The Slack receiver's configuration, or None without ALERT_SLACK_WEBHOOK_URL."""
    slack_url = alerting.alert_slack_webhook_url.get_secret_value()
    if not slack_url:
        return None
    slack: dict[str, Any] = {
        "channel": alerting.alert_slack_channel,
        "send_resolved": True,
        "title": "{{ .Status | toUpper }}: {{ .CommonLabels.alertname }} "
        "({{ .CommonLabels.service }})",
        "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n"
        "{{ .Annotations.description }}\nRunbook: {{ .Annotations.runbook_url }}\n"
        "{{ end }}",
    }
    if inline:
        slack["api_url"] = slack_url
    else:
        slack["api_url_file"] = f"{SECRETS_DIR}/alert_slack_webhook_url"
    return slack


def _email_config(alerting: AlertingSettings, *, inline: bool) -> dict[str, Any] | None:
    """The e-mail receiver's configuration, or None without ALERT_EMAIL_TO."""
    if not alerting.alert_email_to:
        return None
    if not alerting.alert_smtp_smarthost:
        raise ValueError("ALERT_EMAIL_TO is set but ALERT_SMTP_SMARTHOST (host:port) is empty")
    email: dict[str, Any] = {
        "to": alerting.alert_email_to,
        "from": alerting.alert_email_from,
        "smarthost": alerting.alert_smtp_smarthost,
        "require_tls": alerting.alert_smtp_require_tls,
        "send_resolved": True,
    }
    if alerting.alert_smtp_username:
        email["auth_username"] = alerting.alert_smtp_username
        if inline:
            email["auth_password"] = alerting.alert_smtp_auth_pass.get_secret_value()
        else:
            email["auth_password_file"] = f"{SECRETS_DIR}/alert_smtp_auth_pass"
    return email


def write_config(config: dict[str, Any], target: Path, *, private: bool = True) -> Path:
    """Write `config` to `target` atomically: mode 0600 when it may hold secrets (`private`),
    else 0644 (the docker runtime's, read by the container's own user)."""
    mode = 0o600 if private else 0o644
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(
            "# Rendered by the launcher from platform/alertmanager/alertmanager.yml and "
            ".env (mlops_platform.observability.alerting). Do not edit.\n"
        )
        yaml.safe_dump(config, handle, sort_keys=False)
    os.chmod(tmp, mode)
    tmp.replace(target)
    return target
