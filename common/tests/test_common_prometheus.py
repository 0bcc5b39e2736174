"""``mlops_common.prometheus.MetricSet``: a declared table becomes metrics on the set's registry."""

from __future__ import annotations

from typing import Annotated

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mlops_common.prometheus import Metric, MetricSet


class _Set(MetricSet):
    hits: Annotated[Counter, Metric("t_hits", "Hits by route", ("route",))]
    up: Annotated[Gauge, Metric("t_up", "1 when up")]
    seconds: Annotated[Histogram, Metric("t_seconds", "Latency", (), (0.1, 1.0))]
    plain: int = 3  # not a metric: left alone


class _Wider(_Set):
    extra: Annotated[Gauge, Metric("t_extra", "Declared by a subclass")]


def test_table_is_built_on_the_registry_with_names_labels_and_buckets() -> None:
    registry = CollectorRegistry()
    metrics = _Set(registry, process=False)
    metrics.hits.labels("/a").inc(2)
    metrics.up.set(1)
    metrics.seconds.observe(0.5)
    assert metrics.registry is registry
    assert registry.get_sample_value("t_hits_total", {"route": "/a"}) == 2
    assert registry.get_sample_value("t_up") == 1
    assert registry.get_sample_value("t_seconds_bucket", {"le": "0.1"}) == 0
    assert registry.get_sample_value("t_seconds_bucket", {"le": "1.0"}) == 1
    assert registry.get_sample_value("process_cpu_seconds_total") is None
    assert metrics.plain == 3


def test_each_instance_has_its_own_registry_and_subclasses_extend_the_table() -> None:
    a, b = _Wider(), _Wider()
    a.extra.set(5)
    assert b.registry.get_sample_value("t_extra") == 0
    assert list(_Wider.specs()) == ["hits", "up", "seconds", "extra"]
    assert a.registry.get_sample_value("process_cpu_seconds_total") is not None


def test_buckets_only_on_histograms() -> None:
    class NoBuckets(MetricSet):
        h: Annotated[Histogram, Metric("t_h", "no buckets")]

    class GaugeBuckets(MetricSet):
        g: Annotated[Gauge, Metric("t_g", "buckets on a gauge", (), (1.0,))]

    with pytest.raises(TypeError, match="declares no buckets"):
        NoBuckets(process=False)
    with pytest.raises(TypeError, match="histograms only"):
        GaugeBuckets(process=False)
