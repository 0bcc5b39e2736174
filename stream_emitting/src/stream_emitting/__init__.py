"""stream_emitting: the driver statistics event schema (``events``) and its producer.

``stream_emitting.events`` is the one definition of ``DriverStatsEvent``; the data pipeline's
stream consumer imports it from here.
"""
