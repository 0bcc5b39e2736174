"""Airflow's StatsD client sends from the platform's bind host, not from 0.0.0.0 (issue 15).

An unbound UDP socket is bound to every interface on its first send; Airflow is pointed at
a StatsClient subclass whose socket is bound to the destination's loopback address first.
"""

from __future__ import annotations

import socket
from pathlib import Path

from mlops_platform.launcher.services.airflow import AirflowService
from mlops_platform.launcher.services.base import Context
from mlops_platform.launcher.settings import LauncherSettings
from mlops_platform.observability.statsd.client import BoundStatsClient


def test_the_client_socket_is_bound_to_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        client = BoundStatsClient("127.0.0.1", server.getsockname()[1], prefix="airflow")
        assert client._sock.getsockname()[0] == "127.0.0.1"
        client.incr("probe")
        data, sender = server.recvfrom(512)
    assert data == b"airflow.probe:1|c"
    assert sender[0] == "127.0.0.1"


def test_airflow_is_configured_with_the_bound_client(tmp_path: Path) -> None:
    settings = LauncherSettings.load(tmp_path / ".env", mlops_data_dir=tmp_path / "data")
    env = AirflowService().environment(Context(settings, tmp_path / ".env"))
    path = env["AIRFLOW__METRICS__STATSD_CUSTOM_CLIENT_PATH"]
    assert path == f"{BoundStatsClient.__module__}.{BoundStatsClient.__name__}"
