"""Where experiments live: PostgreSQL (the database ``<MLOPS_DATABASE_PREFIX>_experiments`` on
``MLOPS_DATABASE_URL``) when configured, else SQLite ``<MLOPS_DATA_DIR>/experiments.db``.

Needs ``mlops-common[postgres]`` (SQLAlchemy). Serving writes experiments (admin API and CLI)
and reads the running one; monitoring reads them and writes a bandit's allocation. "At most one
running experiment per model" is a partial unique index of the database, so two concurrent
starts cannot both win.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import SQLAlchemyError as StoreUnavailable

from mlops_common.experiments import Experiment, ExperimentError, ExperimentSpec
from mlops_common.postgres import database_url, ensure_database, make_engine
from mlops_common.settings import PlatformSettings

__all__ = [
    "ExperimentConflict",
    "ExperimentNotFound",
    "ExperimentStore",
    "StoreUnavailable",
]

COMPONENT = "experiments"

metadata = MetaData()
experiments = Table(
    "experiments",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("model_name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", Text, nullable=False),
    Column("weights", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("stopped_at", DateTime(timezone=True)),
)
Index(
    "one_running_experiment_per_model",
    experiments.c.model_name,
    unique=True,
    sqlite_where=text("status = 'running'"),
    postgresql_where=text("status = 'running'"),
)


class ExperimentNotFound(ExperimentError):
    pass


class ExperimentConflict(ExperimentError):
    """The request contradicts the stored state (a name taken, a second running experiment)."""


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ExperimentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata.create_all(engine)

    @classmethod
    def from_settings(cls, settings: PlatformSettings) -> ExperimentStore:
        if settings.uses_postgres:
            name = settings.database_name(COMPONENT)
            ensure_database(settings.mlops_database_url, name)
            return cls(make_engine(database_url(settings.mlops_database_url, name)))
        path = Path(settings.data_dir) / f"{COMPONENT}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(create_engine(f"sqlite:///{path}"))

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # --- reading --------------------------------------------------------------------------
    @staticmethod
    def _row(row: Any) -> Experiment:
        spec = json.loads(row.spec)
        return Experiment.model_validate(
            {
                **spec,
                "status": row.status,
                "weights": json.loads(row.weights),
                "created_at": _utc(row.created_at),
                "started_at": _utc(row.started_at),
                "stopped_at": _utc(row.stopped_at),
            }
        )

    def list(self) -> list[Experiment]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(experiments).order_by(experiments.c.created_at)).all()
        return [self._row(row) for row in rows]

    def get(self, name: str) -> Experiment:
        with self.engine.connect() as conn:
            row = conn.execute(select(experiments).where(experiments.c.name == name)).first()
        if row is None:
            raise ExperimentNotFound(f"no experiment named {name!r}")
        return self._row(row)

    def running(self, model_name: str) -> Experiment | None:
        """The running experiment on ``model_name``'s traffic, if any."""
        query = select(experiments).where(
            experiments.c.model_name == model_name, experiments.c.status == "running"
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else self._row(row)

    # --- writing --------------------------------------------------------------------------
    def create(self, spec: ExperimentSpec) -> Experiment:
        values = {
            "name": spec.name,
            "model_name": spec.model_name,
            "status": "created",
            "spec": spec.model_dump_json(),
            "weights": json.dumps(spec.initial_weights()),
            "created_at": datetime.now(UTC),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(experiments).values(values))
        except IntegrityError:
            raise ExperimentConflict(f"an experiment named {spec.name!r} exists") from None
        return self.get(spec.name)

    def start(self, name: str) -> Experiment:
        current = self.get(name)
        if current.status != "created":
            raise ExperimentConflict(f"experiment {name!r} is {current.status}, not created")
        other = self.running(current.model_name)
        if other is not None:
            raise ExperimentConflict(
                f"experiment {other.name!r} is already running on {current.model_name}'s traffic"
            )
        self._set(name, "created", status="running", started_at=datetime.now(UTC))
        return self.get(name)

    def stop(self, name: str) -> Experiment:
        current = self.get(name)
        if current.status != "running":
            raise ExperimentConflict(f"experiment {name!r} is {current.status}, not running")
        self._set(name, "running", status="stopped", stopped_at=datetime.now(UTC))
        return self.get(name)

    def set_weights(self, name: str, weights: dict[str, float]) -> None:
        """A new allocation of a running experiment (a bandit's update)."""
        current = self.get(name)
        if set(weights) != {arm.name for arm in current.arms}:
            raise ExperimentError(f"weights {sorted(weights)} are not the arms of {name!r}")
        self._set(name, "running", weights=json.dumps(weights))

    def _set(self, name: str, expected: str, **values: Any) -> None:
        query = (
            update(experiments)
            .where(experiments.c.name == name, experiments.c.status == expected)
            .values(**values)
        )
        try:
            with self.engine.begin() as conn:
                changed = conn.execute(query).rowcount
        except IntegrityError:
            raise ExperimentConflict(
                f"another experiment is already running on {name!r}'s traffic"
            ) from None
        if changed != 1:
            raise ExperimentConflict(f"experiment {name!r} changed meanwhile (not {expected})")

    def close(self) -> None:
        self.engine.dispose()
