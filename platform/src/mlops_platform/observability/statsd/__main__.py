"""``python -m mlops_platform.observability.statsd``: the StatsD bridge."""

import sys

from mlops_platform.observability.statsd.cli import main

sys.exit(main())
