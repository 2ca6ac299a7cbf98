"""What registering a model infers from its training data: names, types, profile, output type, recipe."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from services.trainer.domain.recipe import build_estimator, parse_recipe
from shared.feature_schema import FeatureSchema, check_features
from shared.onboarding import (
    BLIND_HINT,
    OnboardingError,
    blind_spots,
    default_recipe,
    feature_names,
    infer_schema,
    onboard,
    output_type,
    register_fix,
)
from shared.profile import CategoricalProfile, NumericProfile


def churn() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 300
    age = rng.integers(18, 80, n)
    spend = rng.normal(50, 10, n)
    spend[::10] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "spend": spend,
            "premium": rng.random(n) < 0.3,
            "plan": rng.choice(["basic", "pro"], n),
            "churned": (age > 50).astype(int),
        }
    )


def test_names_come_from_the_model_when_it_has_them_else_from_the_data_minus_the_target() -> None:
    frame = churn()
    fitted_on_two = DecisionTreeClassifier().fit(frame[["spend", "age"]].fillna(0), frame["churned"])
    assert feature_names(fitted_on_two, frame, "churned") == ["spend", "age"]
    fitted_on_numpy = DecisionTreeClassifier().fit(frame[["age"]].to_numpy(), frame["churned"])
    assert feature_names(fitted_on_numpy, frame, "churned") == ["age", "spend", "premium", "plan"]


@pytest.mark.parametrize(
    ("columns", "target", "message"),
    [
        (["age", "churned"], "label", "no target column 'label'"),
        (["spend", "churned"], "churned", r"fitted on \['age'\]"),
        (["churned"], "churned", "no column besides the target"),
    ],
)
def test_names_that_cannot_work_are_refused_naming_the_problem(
    columns: list[str], target: str, message: str
) -> None:
    frame = churn()
    model = DecisionTreeClassifier().fit(frame[["age"]], frame["churned"])
    if columns == ["churned"]:
        model = DecisionTreeClassifier().fit(frame[["age"]].to_numpy(), frame["churned"])
    with pytest.raises(OnboardingError, match=message):
        feature_names(model, frame[columns], target)


def test_types_come_from_the_data_and_only_columns_with_gaps_are_nullable() -> None:
    schema = infer_schema(churn(), ["age", "spend", "premium", "plan"])
    assert [(f.name, f.type, f.nullable) for f in schema.features] == [
        ("age", "integer", False),
        ("spend", "numeric", True),
        ("premium", "boolean", False),
        ("plan", "categorical", False),
    ]
    assert all(f.min is None and f.max is None and f.categories is None for f in schema.features), (
        "no ranges: a shifted input is drift for the monitor, not a refused event"
    )


def test_output_type_is_what_predict_returns() -> None:
    assert output_type(np.array([0, 1])) == "int"
    assert output_type(np.array(["no", "yes"], dtype=object)) == "str"
    assert output_type(np.array([True, False])) == "bool"
    assert output_type(np.array([0.5, 1.5])) == "float"


def test_a_classifier_on_a_dataframe_is_onboarded_with_schema_profile_metrics_and_recipe() -> None:
    wine = load_wine(as_frame=True).frame
    features = [c for c in wine.columns if c != "target"]
    model = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).fit(
        wine[features], wine["target"]
    )
    result = onboard(model, wine, "target")

    assert result.feature_schema.names == features
    assert {f.type for f in result.feature_schema.features} == {"numeric"}
    assert result.output_type == "int" and result.task_type == "multiclass_classification"
    profile = result.reference_profile
    assert profile.rows == len(wine) and set(profile.features) == set(features)
    assert isinstance(profile.features["alcohol"], NumericProfile)
    assert isinstance(profile.prediction, CategoricalProfile), "classes are categories for the monitor"
    assert 0.9 < profile.metrics["accuracy"] <= 1.0 and result.metrics == profile.metrics

    recipe = parse_recipe(result.training_recipe)
    assert recipe.task == "classification"
    assert recipe.factory == "sklearn.ensemble:RandomForestClassifier"
    assert recipe.estimator.params == {"n_estimators": 20, "max_depth": 4}
    retrained = build_estimator(recipe, result.feature_schema)
    assert isinstance(retrained.steps[-1][1], RandomForestClassifier)


def test_metrics_given_replace_the_optimistic_ones_measured_on_training_rows() -> None:
    frame = churn()
    model = DecisionTreeClassifier().fit(frame[["age"]], frame["churned"])
    result = onboard(model, frame, "churned", metrics={"accuracy": 0.81})
    assert result.reference_profile.metrics == {"accuracy": 0.81}


def test_a_pipeline_keeps_its_final_estimator_and_string_classes_are_str() -> None:
    frame = churn()
    frame["churned"] = frame["churned"].map({0: "stays", 1: "leaves"})
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(frame[["age"]], frame["churned"])
    result = onboard(model, frame, "churned")
    assert result.output_type == "str" and result.task_type == "binary_classification"
    assert default_recipe(model, "classification")["estimator"] == {
        "factory": "sklearn.linear_model:LogisticRegression",
        "params": {"C": 0.5},
    }


def test_a_regressor_records_float_outputs_rmse_and_a_regression_recipe() -> None:
    frame = churn().dropna()
    model = LinearRegression().fit(frame[["age"]], frame["spend"])
    result = onboard(model, frame, "spend")
    assert result.output_type == "float" and result.task_type == "regression"
    assert set(result.metrics) == {"rmse"} and isinstance(result.reference_profile.prediction, NumericProfile)
    assert parse_recipe(result.training_recipe).factory == "sklearn.linear_model:LinearRegression"


@pytest.mark.filterwarnings("ignore:X has feature names")
def test_a_model_that_fails_on_its_own_data_is_refused_with_its_error() -> None:
    frame = churn()[["age", "spend", "churned"]]
    model = DecisionTreeClassifier().fit(np.zeros((4, 3)), [0, 1, 0, 1])  # three inputs, the data has two
    with pytest.raises(OnboardingError, match=r"fails on its own data .*ValueError.*features"):
        onboard(model, frame, "churned")


def test_empty_training_data_is_refused_naming_the_fix() -> None:
    model = DecisionTreeClassifier().fit(churn()[["age"]], churn()["churned"])
    with pytest.raises(OnboardingError, match="--data TRAIN_FILE --target COLUMN"):
        onboard(model, churn().iloc[:0], "churned")


def test_a_blind_registration_is_named_with_its_fix() -> None:
    problems = blind_spots(FeatureSchema(), has_profile=False)
    assert [p.split(":")[0] for p in problems] == ["empty feature schema", "no reference profile"]
    assert all(BLIND_HINT in p for p in problems) and "no input is checked" in problems[0]
    assert blind_spots(infer_schema(churn(), ["age"]), has_profile=True) == []
    assert not any("--data" in p for p in blind_spots(FeatureSchema(), has_profile=False, fix=""))
    assert register_fix("churn", "my model.joblib") == (
        "fix: driftloop models register churn 'my model.joblib' --data TRAIN_FILE --target COLUMN"
    )


def test_gaps_in_features_and_labels_are_profiled_as_missing_and_not_scored() -> None:
    frame = churn()
    frame.loc[::7, "plan"] = None
    frame["churned"] = frame["churned"].astype(float)
    frame.loc[::5, "churned"] = np.nan
    model = DecisionTreeClassifier(random_state=0).fit(frame[["age"]], frame["churned"].fillna(0))
    result = onboard(model, frame, "churned")
    assert result.metrics["accuracy"] > 0.95, "rows without a label are not counted as wrong"
    schema = infer_schema(frame, ["plan"])
    assert schema.features[0].nullable and schema.features[0].type == "categorical"
    plan = onboard(
        DecisionTreeClassifier().fit(
            pd.get_dummies(frame[["plan"]]).astype(float), frame["churned"].fillna(0)
        ),
        pd.get_dummies(frame[["plan"]]).astype(float).assign(churned=frame["churned"]),
        "churned",
    )
    assert plan.output_type == "float" and plan.task_type == "binary_classification"


def test_a_regression_with_unlabelled_rows_measures_rmse_on_the_labelled_ones() -> None:
    frame = churn()  # spend has gaps: as the target, those rows are not scored
    model = LinearRegression().fit(frame[["age"]], frame["spend"].fillna(50))
    result = onboard(model, frame, "spend")
    assert math.isfinite(result.metrics["rmse"]) and result.reference_profile.rows == len(frame)


class Threshold:
    """A model that is not scikit-learn's: anything with ``predict`` may be registered."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return (frame["age"] > 50).to_numpy()


def test_a_model_that_is_not_scikit_learn_is_judged_by_what_it_returns() -> None:
    result = onboard(Threshold(), churn(), "churned")
    assert result.output_type == "bool" and result.task_type == "binary_classification"
    prediction = result.reference_profile.prediction
    assert isinstance(prediction, CategoricalProfile) and set(prediction.frequencies) == {"0", "1"}, (
        "booleans keyed as the monitor's windows key them"
    )
    assert result.training_recipe == {"task": "classification"}, "the trainer's default: it cannot rebuild it"
    with pytest.raises(OnboardingError, match="AttributeError"):
        onboard(object(), churn(), "churned")


def test_every_training_row_sent_as_an_app_sends_it_passes_the_inferred_schema() -> None:
    """What ingest checks served predictions with: valid traffic must not be dead-lettered."""
    frame = churn()
    frame.loc[::7, "plan"] = None
    names = ["age", "spend", "premium", "plan"]
    schema = infer_schema(frame, names)
    rows = json.loads(frame[names].to_json(orient="records"))  # NaN → null, numpy → JSON, as over the wire
    assert [issue for row in rows for issue in check_features(schema, row)] == []
