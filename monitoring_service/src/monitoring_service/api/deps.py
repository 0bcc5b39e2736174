"""The dependency through which the routers reach the service (``app.state.monitor``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from monitoring_service.monitor import Monitor


async def get_monitor(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


MonitorDep = Annotated[Monitor, Depends(get_monitor)]
