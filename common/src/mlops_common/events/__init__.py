"""The platform's event schemas, each versioned and defined once.

- ``serving``: prediction and feedback events (serving → monitoring, Redis streams);
- ``driver_stats``: the example project's driver statistics events (stream producer → consumer);
- ``alerts``: Alertmanager's webhook payload (Alertmanager → the retraining trigger);
- ``promotion``: the promotion log's records (every alias move, MLflow registered-model tags).
"""
