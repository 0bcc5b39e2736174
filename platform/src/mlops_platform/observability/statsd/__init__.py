"""The local runtime's StatsD-to-Prometheus bridge: what Airflow sends, mapped like statsd_exporter.

Debian 12 packages no statsd_exporter, so the local runtime runs this bridge with upstream's
flags and the same mapping file (``platform/prometheus/statsd_mapping.yml``); the docker runtime
runs the upstream ``prom/statsd-exporter`` image. It does only what that file and Airflow's plain
StatsD client use, and refuses a mapping file that asks for more:

- :mod:`.line`: plain StatsD lines (counters, gauges with relative updates, timers in
  milliseconds, sample rates);
- :mod:`.mapping`: glob rules in file order (first match wins), then regex rules, ``$n``
  substitution, ``help``, histogram buckets, ``action: drop``, ``defaults``;
- :mod:`.exporter`: the metrics, created on first sight and served by prometheus_client;
- :mod:`.cli`: ``python -m mlops_platform.observability.statsd`` (also reachable as
  ``python -m mlops_platform.observability.statsd_bridge``, the path the launcher runs).
"""
