"""What the platform's DAG files share: the settings of every DAG, and a start date from the
environment. Standard library only: DAG files import this at module level, and they are parsed
often (nothing heavy may load then; each component's DAG tests check it).

    @dag(dag_id=DAG_ID, schedule=..., start_date=..., params={...}, **dag_defaults(__doc__, "data"))
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

#: a failed task is retried once, 30 s later (a step that must not retry says ``retries=0``)
DEFAULT_ARGS = {"retries": 1, "retry_delay": timedelta(seconds=30)}


def dag_defaults(doc: str | None, *tags: str, catchup: bool = False) -> dict[str, Any]:
    """The keyword arguments every DAG of the platform passes to ``@dag``: one active run at a
    time, no catch-up unless asked, the module's docstring as its documentation, its tags and
    ``DEFAULT_ARGS``."""
    return {
        "catchup": catchup,
        "max_active_runs": 1,
        "doc_md": doc,
        "tags": list(tags),
        "default_args": dict(DEFAULT_ARGS),
    }


def start_date_from_env(name: str, default: str = "2024-01-01") -> datetime:
    """The ISO date or date-time in the environment variable ``name`` (else ``default``); naive
    values are UTC."""
    value = os.environ.get(name, "").strip() or default
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def flag_from_env(name: str) -> bool:
    """True when the environment variable ``name`` says ``1``, ``true`` or ``yes``."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")
