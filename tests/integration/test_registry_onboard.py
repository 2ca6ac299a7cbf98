"""``driftloop models register NAME MODEL --data FILE --target COLUMN`` against a real registry: one command
gives the loop a schema, a reference profile, a recipe and the output type, and promotes on request."""

from __future__ import annotations

import io
import json
from pathlib import Path
from uuid import uuid4

import httpx
import joblib
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.trainer.domain.recipe import parse_recipe
from shared.onboard_registry import register_model, set_model
from shared.profile import ReferenceProfile
from tests.integration.test_registry_cli import registry_url, run

pytestmark = pytest.mark.integration
__all__ = ["registry_url"]  # the fixture, started once per test as the other registry CLI tests do

TARGET = "target"


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame


def reader(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": "Bearer r"})


def features_of(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != TARGET]


def test_register_with_data_and_promote_gives_the_loop_schema_profile_recipe_and_output_type(
    registry_url: str, tmp_path: Path, cancer: pd.DataFrame
) -> None:
    name = f"cancer-{uuid4().hex[:8]}"
    features = features_of(cancer)
    model = RandomForestClassifier(n_estimators=25, max_depth=5, random_state=0).fit(
        cancer[features], cancer[TARGET]
    )
    joblib.dump(model, tmp_path / "model.joblib")
    cancer.to_csv(tmp_path / "train.csv", index=False)

    code, out = run(
        registry_url, "w", "register", name, str(tmp_path / "model.joblib"),
        "--data", str(tmp_path / "train.csv"), "--target", TARGET, "--promote",
    )  # fmt: skip
    assert code == 0, out
    assert f"registered {name} version 1" in out and "predictions are int" in out
    assert f"{name}@production → version 1" in out
    assert "WARNING" not in out

    with reader(registry_url) as http:
        entry = http.get(f"/models/{name}").json()
        version = http.get(f"/models/{name}/versions/1").json()
        profile = ReferenceProfile.model_validate(
            http.get(f"/models/{name}/versions/1/reference-profile").raise_for_status().json()
        )
    schema = entry["feature_schema"]["features"]
    assert [f["name"] for f in schema] == features
    assert {f["type"] for f in schema} == {"numeric"} and not any(f["nullable"] for f in schema)
    assert entry["tags"]["output_type"] == "int" and version["tags"]["output_type"] == "int"
    assert entry["task_type"] == "binary_classification"
    assert entry["aliases"] == {"production": 1} and version["aliases"] == ["production"]
    recipe = parse_recipe(entry["training_recipe"])
    assert recipe.factory == "sklearn.ensemble:RandomForestClassifier"
    assert recipe.estimator.params == {"n_estimators": 25, "max_depth": 5}

    assert version["has_reference_profile"] and profile.rows == len(cancer)
    assert set(profile.features) == set(features) and profile.prediction is not None
    assert profile.metrics == version["metrics"] and 0.9 < profile.metrics["accuracy"] <= 1.0
    # permutation importance on the data given: what the monitor ranks drifted features by
    assert set(profile.feature_importance) == set(features) and max(profile.feature_importance.values()) > 0
    assert "feature importance (share, on the data given): " in out


def test_parquet_data_and_a_model_fitted_on_some_columns_give_a_schema_of_those_columns(
    registry_url: str, tmp_path: Path, cancer: pd.DataFrame
) -> None:
    name = f"cancer-{uuid4().hex[:8]}"
    chosen = ["mean radius", "mean texture", "worst area"]
    labelled = cancer.assign(**{TARGET: cancer[TARGET].map({0: "malignant", 1: "benign"})})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3)).fit(labelled[chosen], labelled[TARGET])
    joblib.dump(model, tmp_path / "model.joblib")
    labelled.to_parquet(tmp_path / "train.parquet")

    code, out = run(
        registry_url, "w", "register", name, str(tmp_path / "model.joblib"),
        "--data", str(tmp_path / "train.parquet"), "--target", TARGET,
        "--metrics", '{"accuracy": 0.88}',
    )  # fmt: skip
    assert code == 0, out
    with reader(registry_url) as http:
        entry = http.get(f"/models/{name}").json()
        profile = http.get(f"/models/{name}/versions/1/reference-profile").json()
    assert [f["name"] for f in entry["feature_schema"]["features"]] == chosen
    assert entry["tags"]["output_type"] == "str" and entry["aliases"] == {}
    assert entry["training_recipe"]["estimator"] == {
        "factory": "sklearn.linear_model:LogisticRegression",
        "params": {"C": 0.3},
        "steps": [{"factory": "sklearn.preprocessing:StandardScaler", "params": {}}],  # the pipeline's own
    }
    assert profile["metrics"] == {"accuracy": 0.88}, (
        "metrics given replace the ones measured on training rows"
    )

    # a later version answering another type is refused: every version answers as registered
    ints = RandomForestClassifier(n_estimators=5, random_state=0).fit(cancer[chosen], cancer[TARGET])
    joblib.dump(ints, tmp_path / "ints.joblib")
    cancer.to_parquet(tmp_path / "ints.parquet")
    code, out = run(
        registry_url, "w", "register", name, str(tmp_path / "ints.joblib"),
        "--data", str(tmp_path / "ints.parquet"), "--target", TARGET,
    )  # fmt: skip
    assert code == 1 and "answers int but" in out and "output_type=str" in out
    with reader(registry_url) as http:
        assert http.get(f"/models/{name}").json()["latest_version"] == 1


@pytest.mark.filterwarnings("ignore:X has feature names")
def test_a_model_failing_on_its_own_data_is_refused_and_nothing_is_registered(
    registry_url: str, tmp_path: Path, cancer: pd.DataFrame
) -> None:
    name = f"cancer-{uuid4().hex[:8]}"
    model = LogisticRegression().fit(cancer[features_of(cancer)].to_numpy()[:, :4], cancer[TARGET])
    joblib.dump(model, tmp_path / "model.joblib")
    cancer.to_csv(tmp_path / "train.csv", index=False)
    code, out = run(
        registry_url, "w", "register", name, str(tmp_path / "model.joblib"),
        "--data", str(tmp_path / "train.csv"), "--target", TARGET,
    )  # fmt: skip
    assert code == 1 and "fails on its own data" in out and "ValueError" in out
    code, out = run(
        registry_url, "w", "register", name, str(tmp_path / "model.joblib"),
        "--data", str(tmp_path / "train.csv"), "--target", "diagnosis",
    )  # fmt: skip
    assert code == 1 and "no target column 'diagnosis'" in out
    code, out = run(registry_url, "w", "register", name, str(tmp_path / "model.joblib"), "--data", "x.csv")
    assert code == 2 and "--data TRAIN_FILE --target COLUMN" in out
    code, out = run(
        registry_url, "w", "register", name, str(tmp_path / "model.joblib"),
        "--data", str(tmp_path / "absent.csv"), "--target", TARGET,
    )  # fmt: skip
    assert code == 1 and "no training file at" in out
    with reader(registry_url) as http:
        assert http.get(f"/models/{name}").status_code == 404


def test_a_blind_registration_warns_naming_the_fix_and_set_changes_schema_recipe_and_thresholds(
    registry_url: str, tmp_path: Path
) -> None:
    name = f"churn-{uuid4().hex[:8]}"
    (tmp_path / "model.joblib").write_bytes(b"a model")
    code, out = run(
        registry_url, "w", "register", name, str(tmp_path / "model.joblib"), "--create", "--promote"
    )
    assert code == 0 and f"registered {name} version 1" in out and f"{name}@production → version 1" in out
    assert f"WARNING: the loop is blind to {name} version 1:" in out
    assert "WARNING:   empty feature schema" in out and "no input is checked" in out
    assert "WARNING:   no reference profile" in out
    fix = f"WARNING: fix: driftloop models register {name} {tmp_path / 'model.joblib'} --data TRAIN_FILE --target COLUMN"
    assert out.count(fix) == 1, out

    (tmp_path / "schema.json").write_text(json.dumps({"features": [{"name": "age", "type": "integer"}]}))
    (tmp_path / "recipe.json").write_text(json.dumps({"estimator": {"factory": "sklearn.svm:SVC"}}))
    thresholds = {"numeric_effect": 0.5, "windows_needed": 3, "min_importance_share": 0.05}
    (tmp_path / "thresholds.json").write_text(json.dumps(thresholds))
    code, out = run(
        registry_url, "w", "set", name, "--schema", str(tmp_path / "schema.json"),
        "--recipe", str(tmp_path / "recipe.json"), "--thresholds", str(tmp_path / "thresholds.json"),
    )  # fmt: skip
    assert code == 0 and f"updated {name}: recipe, schema, thresholds" in out and "WARNING" not in out
    with reader(registry_url) as http:
        entry = http.get(f"/models/{name}").json()
    assert entry["feature_schema"]["features"][0]["name"] == "age"
    assert entry["training_recipe"] == {"estimator": {"factory": "sklearn.svm:SVC"}}
    assert entry["drift_thresholds"]["numeric_effect"] == 0.5
    assert entry["drift_thresholds"]["min_importance_share"] == 0.05  # what the monitor reads per model

    (tmp_path / "bad.json").write_text(json.dumps({"features": [{"name": "age", "type": "number"}]}))
    code, out = run(registry_url, "w", "set", name, "--schema", str(tmp_path / "bad.json"))
    assert code == 1 and "type" in out and "refused" in out
    code, out = run(registry_url, "r", "set", name, "--recipe", str(tmp_path / "recipe.json"))
    assert code == 1 and "error 403" in out


def test_the_same_from_python_with_a_dataframe(
    registry_url: str, cancer: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cancer-{uuid4().hex[:8]}"
    features = features_of(cancer)[:10]
    model = LogisticRegression(max_iter=500).fit(cancer[features], cancer[TARGET])
    with httpx.Client(base_url=registry_url, headers={"Authorization": "Bearer w"}) as http:
        result = register_model(name, model, data=cancer, target=TARGET, promote=True, registry=http)
        entry = http.get(f"/models/{name}").json()
    assert (result.version, result.alias, result.output_type, result.warnings) == (1, "production", "int", [])
    assert [f["name"] for f in entry["feature_schema"]["features"]] == features
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_URL", registry_url)  # no client given: the settings' registry
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_TOKEN", "w")
    assert set_model(name, thresholds={"numeric_effect": 0.5})["drift_thresholds"]["numeric_effect"] == 0.5
    assert joblib.load(_download(registry_url, name)).predict(cancer[features][:3]).tolist() == (
        model.predict(cancer[features][:3]).tolist()
    )


def _download(url: str, name: str) -> io.BytesIO:
    with reader(url) as http:
        return io.BytesIO(http.get(f"/models/{name}/versions/1/artifact").raise_for_status().content)
