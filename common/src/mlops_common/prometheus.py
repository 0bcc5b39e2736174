"""Prometheus metrics of a component: one registry per process or app instance, its metrics made
by one factory, and ``/metrics`` served while a command runs (extra ``mlops-common[prometheus]``).

    m = MetricFactory()                                  # a fresh registry with process metrics
    requests = m.counter("x_requests_total", "Requests by route", labels=("route",))
    latency = m.histogram("x_request_seconds", "Latency", buckets=(0.01, 0.1, 1.0))
    with metrics_server(m.registry, port=9100, host="127.0.0.1"):
        ...                                              # port 0: no server
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

log = logging.getLogger(__name__)


class MetricFactory:
    """Counters, gauges and histograms on one registry (``registry``), with their label names.
    A fresh registry (``auto_describe``) unless one is given; ``process`` adds the process
    collector (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ...)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=self.registry)

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), *, buckets: Sequence[float]
    ) -> Histogram:
        return Histogram(name, doc, labels, buckets=buckets, registry=self.registry)


@contextmanager
def metrics_server(registry: CollectorRegistry, *, port: int, host: str) -> Iterator[None]:
    """Serve ``registry`` on ``http://<host>:<port>/metrics`` inside the block (a daemon thread,
    shut down on exit); ``port`` 0 serves nothing."""
    if not port:
        yield
        return
    server, _ = start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield
    finally:
        server.shutdown()
