"""Model quality is real: on the generator's ``normal`` scenario at default size (1000 drivers,
30 bookings an hour, 30 days), the champion — loaded as ``models:/<name>@champion`` in a separate
process from the real MLflow server — scores within 0.03 ROC AUC and 0.05 top-1 accuracy of the
oracle on the same most-recent test bookings."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from tp_fixtures import make_world

from example_project.oracle import oracle_metrics
from mlops_testing.airflow import python_json
from training_pipeline import steps
from training_pipeline.gate import GateStatus
from training_pipeline.rundir import RunDir
from training_pipeline.settings import TrainingSettings

pytestmark = pytest.mark.integration

#: scores the champion in a fresh interpreter: nothing of this test process is shared
SCORER = """
import json, sys
import mlflow.pyfunc
import pandas as pd
from mlops_common.metrics import roc_auc, top1_accuracy

name, test_path, candidates_path = sys.argv[1:4]
model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
columns = model.metadata.get_input_schema().input_names()
test = pd.read_parquet(test_path)
candidates = pd.read_parquet(candidates_path)
candidates = candidates[candidates["booking_id"].isin(test["booking_id"])]
p = model.predict(test[columns])[:, 1]
pc = model.predict(candidates[columns])[:, 1]
print(json.dumps({
    "version": model.metadata.model_id or "",
    "roc_auc": roc_auc(test["trip_completed"].to_numpy(bool), p),
    "top1_accuracy": top1_accuracy(candidates, pc),
    "n_test": len(test),
    "first_scores": [float(x) for x in p[:5]],
}))
"""


def test_champion_quality_vs_oracle_in_a_separate_process(
    registry: Callable[..., TrainingSettings], tmp_path: Path, mlflow_server: str
) -> None:
    world = make_world(
        start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 31, tzinfo=UTC)
    )
    settings = registry().with_overrides(
        {"window": {key: when.isoformat() for key, when in world.window().items()}}
    )
    run_dir = tmp_path / "run"
    outcome = steps.run_all(run_dir, settings, labels=world.labels, features=world.features)
    assert outcome.status is GateStatus.PROMOTED and outcome.alias == "champion"
    assert world.features.calls == 2  # labelled rows, then candidates: one store call each

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    test_set, candidates_file = str(run_dir / RunDir.TEST_SET), str(run_dir / RunDir.CANDIDATES)
    champion = python_json(
        "-c", SCORER, settings.model_name, test_set, candidates_file, env=env, timeout=180
    )

    test = pd.read_parquet(run_dir / RunDir.TEST_SET)
    data = world.data
    bookings = data.bookings[data.bookings["booking_id"].isin(test["booking_id"])]
    candidates = data.booking_candidates[
        data.booking_candidates["booking_id"].isin(test["booking_id"])
    ]
    oracle = oracle_metrics(bookings, candidates)
    evaluation = json.loads((run_dir / RunDir.EVALUATION).read_text())["metrics"]
    registration = json.loads((run_dir / RunDir.REGISTRATION).read_text())
    report = {
        "n_test": champion["n_test"],
        "champion_roc_auc": round(champion["roc_auc"], 4),
        "oracle_roc_auc": round(oracle.oracle_roc_auc, 4),
        "champion_top1": round(champion["top1_accuracy"], 4),
        "oracle_top1": round(oracle.oracle_top1_accuracy, 4),
        "random_top1": round(oracle.random_top1_accuracy, 4),
        "model_size_bytes": registration["model_size_bytes"],
        "durations_s": steps.durations(run_dir),
    }
    print("quality:", json.dumps(report))
    assert champion["n_test"] == len(bookings) == 4320
    assert oracle.oracle_roc_auc - champion["roc_auc"] <= 0.03
    assert oracle.oracle_top1_accuracy - champion["top1_accuracy"] <= 0.05
    # the process that loaded the registry's champion saw exactly the model that was evaluated
    assert champion["roc_auc"] == pytest.approx(evaluation["roc_auc"], abs=1e-12)
    assert champion["top1_accuracy"] == pytest.approx(evaluation["top1_accuracy"], abs=1e-12)
