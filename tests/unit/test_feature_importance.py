"""Permutation importance: measured on held-out rows at a bounded cost, stored with every version."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from services.trainer.service import run_training
from shared.importance import importance_shares, permutation_importance
from shared.onboarding import OnboardingError, onboard
from shared.profile import ReferenceProfile
from tests.unit.test_trainer_pipeline import FakeRegistry, ports, query_rows, trigger


def frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({"used": rng.normal(size=n), "ignored": rng.normal(size=n)})
    out["y"] = (out["used"] > 0).astype(int)
    return out


class CountingModel:
    """Predicts from ``used`` only and records how many rows each call saw."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, x: pd.DataFrame) -> Any:
        self.calls.append(len(x))
        return (x["used"] > 0).astype(int).to_numpy()


def test_a_feature_the_model_ignores_scores_zero_and_one_it_uses_scores_high() -> None:
    data = frame()
    scores = permutation_importance(CountingModel(), data[["used", "ignored"]], data["y"], "classification")
    assert scores["ignored"] == 0.0
    assert scores["used"] > 0.4  # shuffled, a perfect rule is right half of the time


def test_the_cost_is_bounded_whatever_the_data_size() -> None:
    data = frame(50_000)
    model = CountingModel()
    permutation_importance(model, data[["used", "ignored"]], data["y"], "classification")
    assert max(model.calls) == 2000  # a seeded sample, never the whole data
    assert len(model.calls) == 1 + 3 * 2  # the baseline, then 3 shuffles per feature


def test_rows_without_a_target_are_left_out_and_no_labels_means_no_importance() -> None:
    data = frame(400)
    data.loc[::2, "y"] = np.nan
    model = CountingModel()
    permutation_importance(model, data[["used", "ignored"]], data["y"], "classification")
    assert max(model.calls) == 200
    data["y"] = np.nan
    assert permutation_importance(model, data[["used", "ignored"]], data["y"], "classification") == {}


def test_a_regressor_is_scored_by_rmse() -> None:
    data = frame()
    data["y"] = 3 * data["used"]
    model = LinearRegression().fit(data[["used", "ignored"]], data["y"])
    scores = permutation_importance(model, data[["used", "ignored"]], data["y"], "regression")
    assert scores["used"] > 3 and abs(scores["ignored"]) < 1e-6


def test_shares_sum_to_one_and_negative_noise_counts_as_zero() -> None:
    shares = importance_shares({"a": 0.3, "b": 0.1, "c": -0.02})
    assert shares["c"] == 0.0 and sum(shares.values()) == pytest.approx(1.0)
    assert shares["a"] == pytest.approx(0.75)


def test_every_trained_version_stores_its_importance_in_its_profile(tmp_path: Any) -> None:
    registry = FakeRegistry()
    outcome = run_training(trigger(), ports(registry, query_rows(1000), tmp_path))
    _, meta = registry.versions[outcome.version or 0]
    importance = ReferenceProfile.model_validate(meta["reference_profile"]).feature_importance
    assert set(importance) == {"x", "z", "plan", "vip"}
    # the label is x + 0.5 * (plan == "pro") > 0: x matters most, z and vip not at all
    assert max(importance, key=importance.__getitem__) == "x"
    assert importance["x"] > 0.2 and abs(importance["z"]) < 0.05 and abs(importance["vip"]) < 0.05
    assert "importance" in meta["params"]["cost"]["stages_s"]


def test_a_model_registered_with_its_data_gets_importance_too() -> None:
    data = frame()
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(data[["used", "ignored"]], data["y"])
    importance = onboard(model, data, "y").reference_profile.feature_importance
    assert importance["used"] > 0.4 and abs(importance["ignored"]) < 0.02


def test_a_model_that_fails_on_shuffled_rows_is_a_clear_error() -> None:
    class Fussy(CountingModel):
        def predict(self, x: pd.DataFrame) -> Any:
            if not x["used"].is_monotonic_increasing:
                raise ValueError("rows must stay sorted")
            return super().predict(x)

    data = frame(500).sort_values("used").reset_index(drop=True)
    with pytest.raises(OnboardingError, match=r"measuring feature importance failed.*rows must stay sorted"):
        onboard(Fussy(), data, "y")


def test_a_trained_model_failing_on_shuffled_rows_costs_the_importance_not_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from services.trainer.domain.dataset import SPLIT
    from services.trainer.domain.importance import holdout_importance
    from services.trainer.domain.recipe import parse_recipe
    from tests.unit.test_trainer_pipeline import SCHEMA

    class Sorted:
        def predict(self, x: pd.DataFrame) -> Any:
            if not x["x"].is_monotonic_increasing:
                raise ValueError("rows must stay sorted")
            return np.zeros(len(x), dtype=int)

    holdout = pd.DataFrame(
        {"x": np.arange(50.0), "z": 0.0, "plan": "pro", "vip": 1.0, "label": "0", SPLIT: "holdout"}
    )
    assert holdout_importance(Sorted(), holdout, parse_recipe({}), SCHEMA) == {}
    assert "feature importance not measured (ValueError: rows must stay sorted)" in caplog.text
