"""``python -m mlops_platform.observability.statsd_bridge``: the path the launcher runs the StatsD
bridge by (the code is :mod:`mlops_platform.observability.statsd`)."""

import sys

from mlops_platform.observability.statsd.cli import main

if __name__ == "__main__":
    sys.exit(main())
