"""monitoring_service: drift and quality of the served model per window (Evidently), and the
retraining trigger behind Alertmanager's webhook. See monitoring_service/README.md."""
