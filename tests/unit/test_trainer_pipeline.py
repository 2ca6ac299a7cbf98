"""A whole training run wired to in-memory fakes: register, gate, promote, reject, reproduce."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from services.trainer.adapters.registry_client import RegisteredModel
from services.trainer.domain.dataset import SPLIT, WindowQuery, read_snapshot
from services.trainer.domain.debounce import Trigger
from services.trainer.domain.recipe import parse_recipe
from services.trainer.domain.training import predict
from services.trainer.service import RunPorts, reproduce_predictions, run_training
from shared.answer_type import output_type_of
from shared.artifacts import FileArtifactStore, file_uri_path
from shared.feature_schema import FeatureSchema, FeatureSpec
from shared.mlflow_model import is_mlflow_model, load_estimator
from shared.profile import ReferenceProfile
from tests.unit.test_mlflow_model import mlflow_zip

SCHEMA = FeatureSchema(
    features=[
        FeatureSpec(name="x", type="numeric"),
        FeatureSpec(name="z", type="numeric"),
        FeatureSpec(name="plan", type="categorical"),
        FeatureSpec(name="vip", type="boolean"),
    ]
)
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def query_rows(n: int, seed: int = 0, flip: bool = False, text_at: int | None = None) -> pd.DataFrame:
    """Rows shaped like the warehouse query's answer: feature maps, label, timestamps."""
    rng = np.random.default_rng(seed)
    x, z = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["free", "pro"], n)
    y = ((x + 0.5 * (plan == "pro") > 0) ^ flip).astype(int)
    rows = []
    for i in range(n):
        num: dict[str, float] = {"x": float(x[i]), "z": float(z[i]), "vip": float(i % 2)}
        cat = {"plan": str(plan[i])}
        if text_at is not None and i >= text_at:
            del num["x"]
            cat["x"] = "n/a"
        at = NOW - timedelta(minutes=n - i)
        rows.append(
            {
                "prediction_id": f"p{i}",
                "occurred_at": at,
                "num_features": num,
                "cat_features": cat,
                "label": str(y[i]),
                "label_num": float(y[i]),
                "labelled_at": at + timedelta(seconds=30),
            }
        )
    return pd.DataFrame(rows)


class FakeRegistry:
    def __init__(
        self, recipe: dict[str, Any] | None = None, task_type: str = "binary_classification"
    ) -> None:
        self.recipe = recipe or {}
        self.task_type = task_type
        self.versions: dict[int, tuple[bytes, dict[str, Any]]] = {}
        self.aliases: dict[str, int] = {}
        self.tags: dict[str, str] = {}

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel(name, self.task_type, SCHEMA, self.recipe, dict(self.aliases), dict(self.tags))

    def download_artifact(self, name: str, version: int) -> bytes:
        return self.versions[version][0]

    def register_version(self, name: str, artifact: bytes, filename: str, metadata: dict[str, Any]) -> int:
        number = len(self.versions) + 1
        self.versions[number] = (artifact, metadata)
        return number

    def set_alias(self, name: str, alias: str, version: int, reason: str) -> None:
        self.aliases[alias] = version


def ports(registry: FakeRegistry, rows: pd.DataFrame, tmp_path: Any) -> RunPorts:
    seen: list[WindowQuery] = []

    def fetch(query: WindowQuery) -> pd.DataFrame:
        seen.append(query)
        return rows

    return RunPorts(registry=registry, fetch_window=fetch, store=FileArtifactStore(tmp_path), now=lambda: NOW)


def trigger() -> Trigger:
    return Trigger("churn", "drift", NOW, uuid4(), drift_event_id=uuid4())


def test_a_first_run_registers_a_promoted_version_with_lineage_profile_and_cost(tmp_path: Any) -> None:
    registry = FakeRegistry()
    outcome = run_training(trigger(), ports(registry, query_rows(1000), tmp_path))
    assert outcome.status == "finished" and outcome.version == 1
    assert registry.aliases == {"candidate": 1, "production": 1}
    _, meta = registry.versions[1]
    lineage = meta["lineage"]
    assert lineage["dataset_sha256"] and lineage["dataset_uri"].startswith("file://")
    assert "INNER JOIN" in lineage["dataset_query"] and lineage["training_run_id"] == str(outcome.run_id)
    assert meta["metrics"]["accuracy"] > 0.9
    assert set(meta["params"]["cost"]) >= {"wall_s", "cpu_s", "peak_memory_mb", "rows"}
    profile = ReferenceProfile.model_validate(meta["reference_profile"])
    assert profile.metrics["accuracy"] == meta["metrics"]["accuracy"]
    assert profile.features["plan"].kind == "categorical"
    assert profile.features["vip"].kind == "numeric"  # as the monitor stores booleans: 1.0/0.0
    assert profile.features["x"].kind == "numeric"


def test_a_better_challenger_is_promoted_and_a_worse_one_stays_candidate(tmp_path: Any) -> None:
    registry = FakeRegistry()
    run_training(trigger(), ports(registry, query_rows(1000, flip=True), tmp_path))  # champion, old world
    better = run_training(trigger(), ports(registry, query_rows(1000, seed=1), tmp_path))
    assert better.decision is not None and better.decision.promote
    assert better.decision.champion_score is not None and better.decision.champion_score < 0.2
    assert registry.aliases == {"candidate": 2, "production": 2}
    noisy = query_rows(1000, seed=2)
    noisy.loc[noisy.index[:800], "label"] = "1"  # a challenger taught mostly noise
    worse = run_training(trigger(), ports(registry, noisy, tmp_path))
    assert worse.decision is not None and not worse.decision.promote
    assert registry.aliases == {"candidate": 3, "production": 2}
    assert registry.versions[3][1]["lineage"]["parent_version"] == 2


def test_text_in_a_numeric_feature_rejects_the_run_before_training(tmp_path: Any) -> None:
    registry = FakeRegistry()
    outcome = run_training(trigger(), ports(registry, query_rows(1000, text_at=900), tmp_path))
    assert outcome.status == "rejected" and registry.versions == {}
    assert outcome.report is not None
    assert any("'x'" in p and "'n/a'" in p for p in outcome.report.problems)


def test_the_snapshot_reproduces_the_registered_models_predictions(tmp_path: Any) -> None:
    registry = FakeRegistry()
    run_training(trigger(), ports(registry, query_rows(1000), tmp_path))
    artifact, meta = registry.versions[1]
    data = file_uri_path(meta["lineage"]["dataset_uri"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["lineage"]["dataset_sha256"]
    frame = read_snapshot(data)
    holdout = frame[frame[SPLIT] == "holdout"]
    recipe = parse_recipe(meta["params"]["recipe"])
    registered = predict(joblib.load(io.BytesIO(artifact)), holdout, recipe, SCHEMA)
    assert reproduce_predictions(data, recipe, SCHEMA) == registered


def test_a_crash_before_promotion_leaves_production_alone(tmp_path: Any) -> None:
    registry = FakeRegistry()
    run_training(trigger(), ports(registry, query_rows(1000, flip=True), tmp_path))

    def boom(name: str, artifact: bytes, filename: str, metadata: dict[str, Any]) -> int:
        raise RuntimeError("registry went away")

    registry.register_version = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        run_training(trigger(), ports(registry, query_rows(1000, seed=1), tmp_path))
    assert registry.aliases == {"candidate": 1, "production": 1}


def test_a_regression_model_needs_no_recipe_either(tmp_path: Any) -> None:
    registry = FakeRegistry(task_type="regression")
    outcome = run_training(trigger(), ports(registry, query_rows(600), tmp_path))
    assert outcome.decision is not None and outcome.decision.metric == "rmse"
    _, meta = registry.versions[1]
    assert {"rmse", "mae", "r2"} <= set(meta["metrics"]) and meta["params"]["estimator"].endswith("Regressor")


def user_champion(classes: list[Any]) -> bytes:
    """A version registered by a user: a classifier whose classes are ``classes`` (ints, booleans...)."""
    buffer = io.BytesIO()
    joblib.dump(DummyClassifier(strategy="most_frequent").fit([[0], [1]], classes), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("champion_classes", "tags", "label_num", "answers"),
    [
        ([0, 1], {}, False, (int, "int")),  # labels read back as text "0"/"1": the champion's ints win
        ([False, True], {}, True, (bool, "bool")),
        (["0", "1"], {}, True, (str, "str")),  # a champion answering text keeps answering text
        ([0, 1], {"output_type": "str"}, True, (str, "str")),  # the type recorded on the model comes first
        (None, {}, True, (int, "int")),  # no champion: whole JSON numbers as labels (label_num) mean ints
        (None, {}, False, (str, "str")),  # no champion, labels sent as text: text
    ],
)
def test_a_retrained_version_answers_with_the_type_the_model_answered_before(
    tmp_path: Any,
    champion_classes: list[Any] | None,
    tags: dict[str, str],
    label_num: bool,
    answers: tuple[type, str],
) -> None:
    registry = FakeRegistry()
    registry.tags = tags
    if champion_classes is not None:
        registry.versions[1] = (user_champion(champion_classes), {})
        registry.aliases["production"] = 1
    rows = query_rows(1000)  # labels as ClickHouse returns them: the String column, "0" and "1"
    if not label_num:
        rows["label_num"] = None
    outcome = run_training(trigger(), ports(registry, rows, tmp_path))
    assert outcome.version is not None
    artifact, meta = registry.versions[outcome.version]
    retrained = joblib.load(io.BytesIO(artifact))
    kind, name = answers
    assert {type(c.item() if isinstance(c, np.generic) else c) for c in retrained.classes_} == {kind}
    assert output_type_of(retrained) == name and meta["tags"]["output_type"] == name
    assert meta["metrics"]["accuracy"] > 0.9  # typed labels still score against the text ones


def test_a_champion_registered_through_mlflow_is_retrained_into_an_mlflow_model(tmp_path: Any) -> None:
    registry = FakeRegistry()
    champion = DummyClassifier(strategy="most_frequent").fit([[0], [1]], [0, 1])
    registry.versions[1] = (mlflow_zip(champion, fmt="cloudpickle"), {})
    registry.aliases["production"] = 1
    outcome = run_training(trigger(), ports(registry, query_rows(1000), tmp_path))
    assert outcome.decision is not None and outcome.decision.champion_score is not None  # it was scored
    artifact, meta = registry.versions[2]
    assert is_mlflow_model(artifact)  # MLflow clients load the retrained version too
    assert not isinstance(load_estimator(artifact), DummyClassifier)  # the challenger, not the champion
    assert meta["metrics"]["accuracy"] > 0.9 and registry.aliases["production"] == 2
