"""Alertmanager's webhook payload (its version "4"): what the retraining trigger receives."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _json_integer(value: Any) -> Any:
    """A JSON integer (``3`` or ``3.0``), never a boolean or a string such as ``"3"``."""
    if isinstance(value, bool | str):
        raise ValueError("Input should be a JSON integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class AlertmanagerAlert(BaseModel):
    """One alert of the webhook payload."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str | None = None
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload, version 4 (the version field is Alertmanager's own)."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: JsonInt = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=10_000)
