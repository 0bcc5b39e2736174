"""stream_emitting: the driver statistics event producer.

The event schema and the stream's location are contracts in ``mlops_common.events.driver_stats``
(shared with the data pipeline's stream consumer); this package produces the events about the
example world's drivers (``example_project.world.drivers``).
"""
