"""monitoring_service."""
