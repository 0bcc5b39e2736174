"""The platform's services, in start order. Add a service here to make run.sh manage it."""

from __future__ import annotations

from mlops_platform.launcher.services.airflow import AirflowService
from mlops_platform.launcher.services.base import Check, Context, Program, Service
from mlops_platform.launcher.services.feast import FeastOnlineStoreService
from mlops_platform.launcher.services.mlflow import MlflowService
from mlops_platform.launcher.services.monitoring import MonitoringService
from mlops_platform.launcher.services.prom_graf import PrometheusService
from mlops_platform.launcher.services.serving import ServingService
from mlops_platform.launcher.services.stream import StreamService
from mlops_platform.launcher.services.traffic import TrafficService

SERVICES: tuple[Service, ...] = (
    FeastOnlineStoreService(),
    MlflowService(),
    PrometheusService(),
    AirflowService(),
    ServingService(),
    MonitoringService(),
    StreamService(),
    TrafficService(),
)


def service_names() -> list[str]:
    return [service.name for service in SERVICES]


def resolve(name: str) -> list[Service]:
    """`all` or one service name -> the services to act on, in start order."""
    if name == "all":
        return list(SERVICES)
    for service in SERVICES:
        if service.name == name:
            return [service]
    raise KeyError(f"unknown service {name!r}; choose one of: all, {', '.join(service_names())}")


__all__ = ["SERVICES", "Check", "Context", "Program", "Service", "resolve", "service_names"]
