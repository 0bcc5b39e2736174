"""The alert webhook's authentication, declared once: ``webhook_secret``.

It is a FastAPI security dependency, so the same object puts the scheme into the OpenAPI schema
(``components.securitySchemes.webhookSecret`` and the route's ``security``) and refuses the
request before its body is read: 401 without usable credentials (with a ``WWW-Authenticate``
challenge), 403 with the wrong secret. Alertmanager sends the secret as
``http_config.authorization: {credentials: <secret>}`` (Bearer) or as ``basic_auth`` (the secret
as the password; the user name is not checked). ``MONITORING_WEBHOOK_AUTH_REQUIRED=false``
switches the check off (experiments only).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from fastapi import Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from monitoring_service.api.deps import MonitorDep
from monitoring_service.api.errors import ApiError
from monitoring_service.monitor import Monitor
from monitoring_service.settings import MonitoringSettings

CHALLENGE = 'Bearer realm="monitoring"'


def check_secret(settings: MonitoringSettings, header: str | None) -> tuple[int, str] | None:
    """None when the Authorization header carries the shared secret; else (status, why)."""
    if not settings.monitoring_webhook_auth_required:
        return None
    secret = settings.monitoring_webhook_secret.get_secret_value().encode()
    if not header:
        return 401, "missing Authorization header (Bearer <MONITORING_WEBHOOK_SECRET>)"
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        offered = value.encode()
    elif scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return 401, "malformed basic credentials"
        offered = decoded.partition(":")[2].encode()
    else:
        return 401, "Authorization must be Bearer <secret> or Basic <user:secret>"
    if not secret or not hmac.compare_digest(offered, secret):
        return 403, "wrong webhook secret"
    return None


def webhook_refusal(
    monitor: Monitor,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> ApiError:
    """The error refusing a webhook request, counted in ``monitoring_webhook_requests_total``."""
    monitor.metrics.webhook_requests.labels(str(status)).inc()
    return ApiError(status, code, message, headers)


class WebhookSecret(SecurityBase):
    """The shared secret ``MONITORING_WEBHOOK_SECRET`` as a security dependency."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            description=(
                "`Authorization: Bearer <MONITORING_WEBHOOK_SECRET>`; HTTP basic auth with the "
                "secret as the password is accepted too (Alertmanager's `basic_auth`)"
            )
        )
        self.scheme_name = "webhookSecret"

    async def __call__(self, request: Request, monitor: MonitorDep) -> None:
        refused = check_secret(monitor.settings, request.headers.get("authorization"))
        if refused is None:
            return
        status, why = refused
        if status == 401:
            raise webhook_refusal(
                monitor, 401, "unauthorized", why, {"WWW-Authenticate": CHALLENGE}
            )
        raise webhook_refusal(monitor, 403, "forbidden", why)


webhook_secret = WebhookSecret()
