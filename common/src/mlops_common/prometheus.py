"""Prometheus metrics of a component: one registry per process or app instance, its metrics
declared once as a table (``MetricSet``) or made by one factory, and ``/metrics`` served while a
command runs (extra ``mlops-common[prometheus]``).

    class XMetrics(MetricSet):                           # the table: attribute, type, spec
        requests: Annotated[Counter, Metric("x_requests_total", "Requests by route", ("route",))]
        latency: Annotated[Histogram, Metric("x_request_seconds", "Latency", (), (0.01, 0.1))]

    metrics = XMetrics()                                 # a fresh registry with process metrics
    metrics.requests.labels("/v1").inc()
    with metrics_server(metrics.registry, port=9100, host="127.0.0.1"):
        ...                                              # port 0: no server

``MetricFactory`` makes single metrics on a registry (what ``MetricSet`` builds its table with).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin, get_type_hints

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


@dataclass(frozen=True)
class Metric:
    """One row of a ``MetricSet`` table: name, help text, label names and (histograms only)
    the bucket upper bounds. The metric type is the annotation it stands in."""

    name: str
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def build(self, kind: type[Any], factory: MetricFactory) -> Counter | Gauge | Histogram:
        if kind is Histogram:
            if self.buckets is None:
                raise TypeError(f"histogram {self.name} declares no buckets")
            return factory.histogram(self.name, self.doc, self.labels, buckets=self.buckets)
        if self.buckets is not None:
            raise TypeError(f"{self.name}: buckets belong to histograms only")
        if kind is Counter:
            return factory.counter(self.name, self.doc, self.labels)
        if kind is Gauge:
            return factory.gauge(self.name, self.doc, self.labels)
        raise TypeError(f"{self.name}: not a Counter, Gauge or Histogram: {kind!r}")


_Table = tuple[tuple[str, type[Any], Metric], ...]
_TABLES: dict[type[MetricSet], _Table] = {}


def _table(cls: type[MetricSet]) -> _Table:
    """The ``Annotated[<type>, Metric(...)]`` attributes of a set's class, in declaration order
    (base classes first); read once per class."""
    found = _TABLES.get(cls)
    if found is None:
        found = _TABLES[cls] = _read_table(cls)
    return found


def _read_table(cls: type[MetricSet]) -> _Table:
    rows = []
    for attr, hint in get_type_hints(cls, include_extras=True).items():
        if get_origin(hint) is not Annotated:
            continue
        kind, *extras = get_args(hint)
        specs = [e for e in extras if isinstance(e, Metric)]
        if len(specs) == 1:
            rows.append((attr, kind, specs[0]))
    return tuple(rows)


class MetricSet:
    """A component's metrics declared as a table: every class attribute annotated
    ``Annotated[Counter | Gauge | Histogram, Metric(...)]`` becomes that metric, built once per
    instance on the instance's registry (``registry``: the one given, else a fresh one with
    ``auto_describe``; ``process`` adds the process collector as ``MetricFactory`` does)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        factory = MetricFactory(registry, process=process)
        self.registry = factory.registry
        for attr, kind, spec in _table(type(self)):
            setattr(self, attr, spec.build(kind, factory))

    @classmethod
    def specs(cls) -> dict[str, Metric]:
        """The table: attribute name -> its ``Metric`` row."""
        return {attr: spec for attr, _, spec in _table(cls)}


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
