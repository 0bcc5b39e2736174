"""The monitoring service's HTTP API: one router per concern, the service reached through a
dependency (``deps.MonitorDep``), errors as ``{"error", "message"}`` JSON (``errors``)."""
