"""The trainer's pure domain: recipe defaults, data validation, the evaluation gate and the debouncer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pandas as pd
import pytest

from services.trainer.domain.debounce import Debouncer, Trigger
from services.trainer.domain.gate import Scorecard, decide
from services.trainer.domain.recipe import PromotionPolicy, RecipeError, build_estimator, parse_recipe
from services.trainer.domain.validation import validate_training_data
from shared.feature_schema import FeatureSchema, FeatureSpec

SCHEMA = FeatureSchema(
    features=[
        FeatureSpec(name="tenure", type="numeric", min=0, max=100),
        FeatureSpec(name="plan", type="categorical", categories=["free", "pro"]),
    ]
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _frame(n: int = 300, **overrides: list[object]) -> pd.DataFrame:
    data: dict[str, list[object]] = {
        "tenure": [float(i % 50) for i in range(n)],
        "plan": ["free" if i % 3 else "pro" for i in range(n)],
        "label": [str(i % 2) for i in range(n)],
    }
    data.update(overrides)
    return pd.DataFrame(data, dtype=object)


def test_an_empty_recipe_has_working_defaults() -> None:
    recipe = parse_recipe({})
    assert recipe.primary_metric == "accuracy"
    assert recipe.factory == "sklearn.ensemble:HistGradientBoostingClassifier"
    estimator = build_estimator(recipe, SCHEMA)
    assert estimator.named_steps["model"].random_state == 0


def test_a_recipe_with_a_bad_factory_or_feature_says_what_to_fix() -> None:
    with pytest.raises(RecipeError, match="cannot import"):
        build_estimator(parse_recipe({"estimator": {"factory": "sklearn.nope:Thing"}}), SCHEMA)
    with pytest.raises(RecipeError, match="zip"):
        parse_recipe({"features": ["zip"]}).feature_names(SCHEMA)
    with pytest.raises(RecipeError, match="metric"):
        parse_recipe({"task": "regression", "metric": "accuracy"})


def test_clean_data_passes_validation() -> None:
    report = validate_training_data(_frame(), SCHEMA, parse_recipe({}))
    assert report.ok, report.problems
    assert report.class_shares == {"0": 0.5, "1": 0.5}


def test_text_in_a_numeric_feature_is_reported_by_name() -> None:
    tenure: list[object] = [float(i) for i in range(300)]
    tenure[7] = "twelve"
    report = validate_training_data(
        _frame(tenure=[min(v, 99) if isinstance(v, float) else v for v in tenure]), SCHEMA, parse_recipe({})
    )
    assert not report.ok
    assert any("'tenure'" in p and "wrong type" in p and "'twelve'" in p for p in report.problems)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"tenure": [None] * 300}, "missing"),
        ({"tenure": [500.0] * 300}, "outside"),
        ({"plan": ["gold"] * 300}, "categories"),
        ({"label": ["1"] * 300}, "single class"),
        ({"label": ["1"] * 299 + ["0"]}, "only 0.33%"),
    ],
)
def test_each_data_problem_is_named(overrides: dict[str, list[object]], needle: str) -> None:
    report = validate_training_data(_frame(**overrides), SCHEMA, parse_recipe({}))
    assert any(needle in p for p in report.problems), report.problems


def test_too_few_rows_is_a_problem() -> None:
    report = validate_training_data(_frame(n=20), SCHEMA, parse_recipe({}))
    assert any("only 20 labelled rows" in p for p in report.problems)


def test_gate_promotes_a_better_challenger_and_keeps_a_worse_one() -> None:
    policy = PromotionPolicy(min_improvement=0.01)
    better = decide("accuracy", Scorecard({"accuracy": 0.9}), Scorecard({"accuracy": 0.8}), policy)
    assert better.promote and better.champion_score == 0.8 and better.challenger_score == 0.9
    worse = decide("accuracy", Scorecard({"accuracy": 0.7}), Scorecard({"accuracy": 0.8}), policy)
    assert not worse.promote and "misses" in worse.reasons[0]
    marginal = decide("accuracy", Scorecard({"accuracy": 0.805}), Scorecard({"accuracy": 0.8}), policy)
    assert not marginal.promote


def test_gate_blocks_a_regressing_secondary_metric_and_a_slow_model() -> None:
    policy = PromotionPolicy(max_regression=0.02, latency_budget_ms=1.0)
    regressed = decide(
        "accuracy",
        Scorecard({"accuracy": 0.9, "log_loss": 0.9}),
        Scorecard({"accuracy": 0.8, "log_loss": 0.4}),
        policy,
    )
    assert not regressed.promote and any("log_loss regresses" in r for r in regressed.reasons)
    slow = decide("accuracy", Scorecard({"accuracy": 0.9}, latency_ms=5.0), None, policy)
    assert not slow.promote and any("budget" in r for r in slow.reasons)


def test_gate_verdict_names_the_setting_that_decided() -> None:
    policy = PromotionPolicy(min_improvement=0.01, max_regression=0.02, latency_budget_ms=1.0)
    higher = decide("accuracy", Scorecard({"accuracy": 0.781}), Scorecard({"accuracy": 0.775}), policy)
    assert higher.verdict == "not promoted: needs a gain of +0.01 (min_improvement), got +0.006"
    better = decide("accuracy", Scorecard({"accuracy": 0.9}), Scorecard({"accuracy": 0.8}), policy)
    assert better.verdict == "promoted: gain +0.100 meets +0.01 (min_improvement)"
    both = decide(
        "accuracy",
        Scorecard({"accuracy": 0.9, "log_loss": 0.9}, latency_ms=5.0),
        Scorecard({"accuracy": 0.8, "log_loss": 0.4}),
        policy,
    )
    assert both.verdict == (
        "not promoted: log_loss worse by 0.500, over 0.02 (max_regression); "
        "5.000 ms per prediction, over 1 (latency_budget_ms)"
    )
    floor = decide("accuracy", Scorecard({"accuracy": 0.6}), None, PromotionPolicy(min_score=0.7))
    assert floor.verdict == "not promoted: needs accuracy of at least 0.7 (min_score), got 0.600"
    tie = decide("accuracy", Scorecard({"accuracy": 0.8}), Scorecard({"accuracy": 0.8}), PromotionPolicy())
    assert tie.verdict == "not promoted: needs a gain above 0 (min_improvement 0), got +0.000"


def test_gate_reads_lower_is_better_metrics_the_right_way() -> None:
    policy = PromotionPolicy()
    assert decide("rmse", Scorecard({"rmse": 1.0}), Scorecard({"rmse": 2.0}), policy).promote
    assert not decide("rmse", Scorecard({"rmse": 3.0}), Scorecard({"rmse": 2.0}), policy).promote


def test_gate_without_champion_promotes_unless_below_the_floor() -> None:
    assert decide("accuracy", Scorecard({"accuracy": 0.6}), None, PromotionPolicy()).promote
    assert not decide("accuracy", Scorecard({"accuracy": 0.6}), None, PromotionPolicy(min_score=0.7)).promote


def _trigger(seconds: float, model: str = "churn") -> Trigger:
    return Trigger(model, "drift", T0 + timedelta(seconds=seconds), uuid4())


def test_a_burst_of_triggers_starts_one_run() -> None:
    debouncer = Debouncer()
    ready = debouncer.offer([_trigger(0), _trigger(1), _trigger(2)])
    assert len(ready) == 1
    debouncer.started("churn", cutoff=T0 + timedelta(seconds=3))
    assert debouncer.finished("churn") == []


def test_triggers_during_a_run_coalesce_into_one_follow_up() -> None:
    debouncer = Debouncer()
    assert len(debouncer.offer([_trigger(0)])) == 1
    debouncer.started("churn", cutoff=T0 + timedelta(seconds=1))
    assert debouncer.offer([_trigger(5), _trigger(6), _trigger(0.5)]) == []
    assert debouncer.running("churn")
    follow_up = debouncer.finished("churn")
    assert [t.occurred_at for t in follow_up] == [T0 + timedelta(seconds=5)]


def test_models_do_not_wait_for_each_other_and_a_failed_run_is_retried() -> None:
    debouncer = Debouncer()
    debouncer.offer([_trigger(0)])
    debouncer.started("churn", cutoff=T0 + timedelta(seconds=1))
    assert len(debouncer.offer([_trigger(0, model="fraud")])) == 1
    debouncer.finished("churn", succeeded=False)
    assert len(debouncer.offer([_trigger(0.5)])) == 1


@pytest.mark.parametrize(
    "window",
    [{"lookback_days": 1e9}, {"lookback_days": 1e999}, {"max_rows": 2**70}, {"max_rows": 10**12}],
)
def test_a_recipe_cannot_make_a_run_unbounded(window: dict[str, float]) -> None:
    with pytest.raises(RecipeError, match="window"):
        parse_recipe({"window": window})
