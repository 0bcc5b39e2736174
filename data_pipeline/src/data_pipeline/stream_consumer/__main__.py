"""``python -m data_pipeline.stream_consumer``: the same as ``data-pipeline stream-consume``."""

import sys

from data_pipeline.stream_consumer.cli import main

sys.exit(main())
