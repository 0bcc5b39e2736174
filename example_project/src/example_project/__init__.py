"""The example company that ships with the platform: a ride-hailing company ranking drivers.

Not part of the platform's core: the core reaches the example's raw data only through the source
contract (``mlops_common.sources``; this package registers the source ``example``). See
``README.md`` and ``docs/example_data.md``.

- ``world``: the synthetic world with known ground truth — configuration and scenarios
  (``world.config``), the true completion model (``world.completion``), the driver statistics
  (``world.drivers``: one formula, sampled hourly by the generator and continuously by the
  stream producer) and the deterministic generator (``world.generator``);
- ``storage``: where the example company keeps its raw data (local parquet files or PostgreSQL),
  the ``example`` source;
- ``oracle``: what the true model achieves;
- ``emit``: the company's upstream systems delivering hour by hour (the ``example_source`` DAG);
- ``dispatcher``: the company's live bookings against the prediction API (the ``traffic`` service);
- ``cli``: ``example-project generate|oracle|emit|dispatch``.

Importing this package imports nothing heavy; import the module you need.
"""
