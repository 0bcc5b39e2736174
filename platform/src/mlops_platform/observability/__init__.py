"""Observability configuration: Grafana dashboards (defined once), Alertmanager rendering, and the
StatsD bridge of the local runtime."""
