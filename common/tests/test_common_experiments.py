"""Experiments as objects: validation of bad input, sticky assignment, the store on SQLite and
on the real PostgreSQL (database ``experiments_experiments``, this branch's prefix)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import create_engine

from mlops_common.events import serving as events
from mlops_common.experiment_store import ExperimentConflict, ExperimentNotFound, ExperimentStore
from mlops_common.experiments import ExperimentSpec, ExperimentTag, assign
from mlops_common.postgres import database_url, ensure_database, make_engine
from mlops_common.settings import PlatformSettings

PG_SERVER = os.environ.get("MLOPS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432")


def spec(name: str = "ab1", **changes: Any) -> ExperimentSpec:
    data: dict[str, Any] = {
        "name": name,
        "model_name": "driver_ranking",
        "arms": [
            {"name": "control", "alias": "champion", "weight": 0.5},
            {"name": "treatment", "version": "3", "weight": 0.5},
        ],
    }
    data.update(changes)
    return ExperimentSpec.model_validate(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "arms": [
                    {"name": "a", "version": "1", "weight": 0.5},
                    {"name": "b", "version": "2", "weight": 0.4},
                ]
            },
            "sum to 1",
        ),
        ({"arms": [{"name": "a", "version": "1", "weight": 1.0}]}, "at least 2"),
        (
            {
                "arms": [
                    {"name": "a", "version": "1", "alias": "x", "weight": 0.5},
                    {"name": "b", "version": "2", "weight": 0.5},
                ]
            },
            "exactly one",
        ),
        (
            {
                "arms": [
                    {"name": "a", "version": "1", "weight": 0.5},
                    {"name": "a", "version": "2", "weight": 0.5},
                ]
            },
            "unique",
        ),
        (
            {
                "allocation": "thompson",
                "floor": 0.4,
                "arms": [
                    {"name": "a", "version": "1"},
                    {"name": "b", "version": "2"},
                    {"name": "c", "version": "3"},
                ],
            },
            "floor",
        ),
        ({"allocation": "bandit"}, "allocation"),
        (
            {"min_samples_per_arm": 10_000, "stopping": {"max_samples_per_arm": 100}},
            "min_samples_per_arm",
        ),
    ],
)
def test_bad_experiments_are_refused_naming_the_problem(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**changes)


def test_assignment_is_sticky_and_follows_the_weights() -> None:
    weights = {"control": 0.8, "treatment": 0.2}
    arms = [assign("ab1", f"req-{i}", weights) for i in range(20_000)]
    assert arms == [assign("ab1", f"req-{i}", weights) for i in range(20_000)]
    share = Counter(arms)["treatment"] / len(arms)
    assert abs(share - 0.2) < 0.015
    # another experiment hashes the same units independently
    other = [assign("ab2", f"req-{i}", weights) for i in range(20_000)]
    assert other != arms


def test_prediction_events_carry_the_experiment_and_version_1_still_decodes() -> None:
    tag = ExperimentTag(experiment="ab1", arm="treatment", assignment="unit")
    event = events.FeedbackEvent(
        request_id="r1",
        time="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        driver_id=7,
        trip_completed=True,
        model=events.ModelRef(name="m", version="3", alias="experiment"),
        experiment=tag,
    )
    fields = events.encode(event)
    assert fields["schema_version"] == "2"
    decoded = events.decode(fields)
    assert decoded.experiment == tag and decoded.schema_version == 2
    old = {
        "type": "feedback",
        "schema_version": "1",
        "data": '{"type":"feedback","schema_version":1,"request_id":"r0",'
        '"time":"2026-01-01T00:00:00Z","driver_id":7,"trip_completed":false}',
    }
    assert events.decode(old).experiment is None
    with pytest.raises(events.MalformedEvent, match="schema_version"):
        events.decode({**old, "schema_version": "3"})


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExperimentStore]:
    if request.param == "sqlite":
        made = ExperimentStore(create_engine(f"sqlite:///{tmp_path / 'experiments.db'}"))
    else:
        name = f"experiments_test_{os.getpid()}"
        ensure_database(PG_SERVER, name)
        made = ExperimentStore(make_engine(database_url(PG_SERVER, name)))
        with made.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM experiments")
    yield made
    made.close()


def test_store_lifecycle_and_one_running_experiment_per_model(store: ExperimentStore) -> None:
    created = store.create(spec("ab1"))
    assert created.status == "created" and created.weights == {"control": 0.5, "treatment": 0.5}
    with pytest.raises(ExperimentConflict, match="exists"):
        store.create(spec("ab1"))
    store.create(spec("ab2"))
    assert store.start("ab1").status == "running"
    with pytest.raises(ExperimentConflict, match="already running"):
        store.start("ab2")
    assert store.running("driver_ranking") == store.get("ab1")
    store.set_weights("ab1", {"control": 0.3, "treatment": 0.7})
    assert store.get("ab1").weights == {"control": 0.3, "treatment": 0.7}
    stopped = store.stop("ab1")
    assert stopped.status == "stopped" and stopped.stopped_at is not None
    assert store.start("ab2").status == "running"
    assert [e.name for e in store.list()] == ["ab1", "ab2"]
    with pytest.raises(ExperimentNotFound):
        store.get("nope")


@pytest.mark.clear_environment("MLOPS_DATABASE_URL", "MLOPS_DATA_DIR", "MLOPS_DATABASE_PREFIX")
def test_store_location_follows_the_settings(tmp_path: Path) -> None:
    local = ExperimentStore.from_settings(PlatformSettings(mlops_data_dir=tmp_path))
    assert local.describe() == f"sqlite:///{tmp_path}/experiments.db"
    local.close()
    remote = ExperimentStore.from_settings(
        PlatformSettings(mlops_database_url=PG_SERVER, mlops_database_prefix="experiments")
    )
    assert remote.engine.url.database == "experiments_experiments"
    remote.close()
