"""The StatsD client Airflow is configured with (AIRFLOW__METRICS__STATSD_CUSTOM_CLIENT_PATH).

statsd's own client sends from an unbound UDP socket, which the kernel binds to 0.0.0.0 on the
first send: a port open on every interface. This one binds its socket to the loopback address
it sends to before the first datagram (to an ephemeral port); any other destination keeps the
library's behaviour.
"""

from __future__ import annotations

import ipaddress

from statsd import StatsClient


class BoundStatsClient(StatsClient):  # type: ignore[misc]  # statsd ships no type hints
    def __init__(
        self,
        host: str = "localhost",
        port: int = 8125,
        prefix: str | None = None,
        maxudpsize: int = 512,
        ipv6: bool = False,
    ) -> None:
        super().__init__(host, port, prefix, maxudpsize, ipv6)
        address = str(self._addr[0])
        if ipaddress.ip_address(address).is_loopback:
            self._sock.bind((address, 0))
