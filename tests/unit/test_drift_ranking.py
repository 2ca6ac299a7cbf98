"""Drift that matters: drifted features ranked by importance x effect, low-importance drift ignored on request."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from services.monitor.domain.announcements import alert_event
from services.monitor.domain.drift.columns import ColumnDrift
from services.monitor.domain.drift.decision import DriftDecider
from services.monitor.domain.drift.ranking import Ranking, merge_rankings, rank_drift, relative_effect
from services.monitor.domain.evaluation import DataWindow, evaluate_data_window
from services.monitor.domain.progress import VersionProgress
from services.monitor.domain.tables import DRIFT_EVENTS, drift_event_row
from shared.drift_thresholds import DriftThresholds
from shared.events import DriftDetected, DriftKind, RankedFeature
from shared.profile import ReferenceProfile, build_profile

START = datetime(2026, 3, 1, tzinfo=UTC)
T = DriftThresholds(windows_needed=2, windows_considered=3)


def drift(name: str, effect: float, threshold: float = 0.1) -> ColumnDrift:
    return ColumnDrift(
        name, "numeric", "ks", 0.0, "wasserstein_norm", effect, threshold, 1000, 1000, drifted=True
    )


def test_a_small_shift_in_a_feature_the_model_leans_on_ranks_above_a_big_one_in_an_ignored_one() -> None:
    ranking = rank_drift(
        [drift("noise", 2.0), drift("income", 0.15), drift("age", 0.2)],
        {"income": 0.5, "age": 0.3, "tenure": 0.2, "noise": 0.0},
    )
    assert [f.feature for f in ranking.features] == ["income", "age", "noise"]
    income = ranking.features[0]
    assert income.importance == pytest.approx(0.5) and income.effect == pytest.approx(1.5)
    assert income.score == pytest.approx(0.75)
    assert ranking.features[-1].score == 0.0 and ranking.features[-1].effect == pytest.approx(20.0)
    assert ranking.importance_share_drifted == pytest.approx(0.8)  # income + age; tenure did not move
    assert not any(f.ignored for f in ranking.features)  # the setting is off


def test_features_below_the_min_importance_share_are_marked_ignored_and_do_not_count() -> None:
    ranking = rank_drift([drift("noise", 2.0), drift("income", 0.15)], {"income": 0.9, "noise": 0.0}, 0.05)
    assert [(f.feature, f.ignored) for f in ranking.features] == [("income", False), ("noise", True)]
    assert ranking.counted == ("income",)


def test_without_importance_features_rank_by_effect_and_nothing_is_ignored() -> None:
    ranking = rank_drift([drift("a", 0.15), drift("b", 0.5)], {}, min_importance_share=0.5)
    assert [f.feature for f in ranking.features] == ["b", "a"]
    assert all(f.importance is None and not f.ignored for f in ranking.features)
    assert ranking.importance_share_drifted is None
    # negative importance is noise: a model whose every feature scores <= 0 has no known importance
    assert rank_drift([drift("a", 0.2)], {"a": -0.01, "b": 0.0}).importance_share_drifted is None


def test_effects_are_relative_to_their_threshold_so_numeric_and_categorical_compare() -> None:
    categorical = ColumnDrift("plan", "categorical", "chi2", 0.0, "jensen_shannon", 0.2, 0.05, 10, 10)
    assert relative_effect(categorical) == pytest.approx(4.0)
    assert relative_effect(drift("x", float("inf"))) == 1e9


def test_an_alert_over_several_windows_keeps_each_feature_at_its_highest_score() -> None:
    a1 = RankedFeature(feature="a", importance=0.6, effect=1.2, score=0.72)
    b = RankedFeature(feature="b", importance=0.1, effect=5.0, score=0.5)
    a2 = RankedFeature(feature="a", importance=0.6, effect=2.0, score=1.2)
    merged = merge_rankings([Ranking((a1,), 0.6), Ranking((b, a2), 0.7)])
    assert [(f.feature, f.score) for f in merged.features] == [("a", 1.2), ("b", 0.5)]
    assert merged.importance_share_drifted == pytest.approx(0.7)
    assert merge_rankings([Ranking((), None)]).importance_share_drifted is None


# -- through the monitor's window judging ------------------------------------------------------------------


def reference(importance: dict[str, float]) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    columns = {name: rng.normal(size=5000).tolist() for name in ("income", "age", "noise")}
    return build_profile(columns).model_copy(update={"feature_importance": importance})


def window(i: int, shifted: dict[str, float]) -> DataWindow:
    rng = np.random.default_rng(100 + i)
    numeric = {name: rng.normal(size=2000) + shifted.get(name, 0.0) for name in ("income", "age", "noise")}
    start = START + timedelta(minutes=i)
    return DataWindow(
        start, start + timedelta(minutes=1), 2000, np.ones(2000), [], np.empty(0), numeric=numeric
    )


IMPORTANCE = {"income": 0.3, "age": 0.1, "noise": 0.0}


def test_drift_in_a_zero_importance_feature_is_ignored_when_the_model_says_so() -> None:
    profile = reference(IMPORTANCE)
    ignoring = T.model_copy(update={"min_importance_share": 0.05})
    result = evaluate_data_window(window(0, {"noise": 1.0}), profile, ignoring)
    assert not result.verdict.drifted
    assert ("drift_ignored", "noise", 0.0) in result.metrics
    assert dict((m, v) for m, f, v in result.metrics if f == "")["drifted_feature_share"] == 0.0
    assert any(t.feature == "noise" and t.drifted for t in result.tests)  # the test itself still says so
    # the same window without the setting is feature drift, as before
    plain = evaluate_data_window(window(0, {"noise": 1.0}), profile, T)
    assert plain.verdict.kinds == {DriftKind.FEATURE} and plain.verdict.drifted_features == ("noise",)
    assert plain.verdict.importance_share_drifted == 0.0


def test_a_decider_fed_ignored_drift_never_alerts_so_the_trainer_is_never_asked() -> None:
    profile = reference(IMPORTANCE)
    ignoring = T.model_copy(update={"min_importance_share": 0.05})
    decider = DriftDecider(ignoring)
    alerts = [
        decider.observe(evaluate_data_window(window(i, {"noise": 1.0}), profile, ignoring).verdict)
        for i in range(6)
    ]
    assert alerts == [None] * 6


def test_the_event_ranks_features_by_importance_times_effect_and_says_how_much_moved() -> None:
    profile = reference(IMPORTANCE)
    ignoring = T.model_copy(update={"min_importance_share": 0.05})
    decider = DriftDecider(ignoring)
    shifted = {"noise": 2.0, "income": 0.3, "age": 0.6}
    alerts = [
        decider.observe(evaluate_data_window(window(i, shifted), profile, ignoring).verdict) for i in range(2)
    ]
    alert = alerts[-1]
    assert alert is not None
    event = alert_event("churn", "3", "data", alert)
    assert isinstance(event, DriftDetected)
    ranked = [(f.feature, f.ignored) for f in event.ranked_features]
    assert ranked == [("income", False), ("age", False), ("noise", True)], event.ranked_features
    scores = [f.score for f in event.ranked_features]
    assert scores == sorted(scores, reverse=True)
    assert event.ranked_features[0].score == pytest.approx(0.75 * event.ranked_features[0].effect)
    assert event.importance_share_drifted == pytest.approx(1.0)
    assert event.drifted_features == ["age", "income"]  # the ignored feature is not announced as drifted
    assert {e.feature for e in event.evidence} == {"age", "income"}


def test_ranked_features_survive_a_checkpoint_and_old_checkpoints_still_load() -> None:
    profile = reference(IMPORTANCE)
    progress = VersionProgress.starting_at(0, 60_000, T)
    verdict = evaluate_data_window(window(0, {"income": 0.5}), profile, T).verdict
    progress.data.observe(verdict)
    raw = json.loads(json.dumps(progress.to_json()))
    back = VersionProgress.from_json(raw, T)
    assert back.data.history[-1].ranked_features == verdict.ranked_features != ()
    assert back.data.history[-1].importance_share_drifted == pytest.approx(0.75)
    for v in raw["data"]["history"]:  # as a monitor before this release wrote them
        del v["ranked_features"], v["importance_share_drifted"]
    assert VersionProgress.from_json(raw, T).data.history[-1].ranked_features == ()


def test_drift_events_rows_carry_the_ranking_and_old_events_still_parse() -> None:
    old = {
        "event_type": "drift_detected", "model_name": "churn", "model_version": "1", "kinds": ["feature"],
        "severity": 0.5, "window_start": START.isoformat(), "window_end": START.isoformat(),
        "windows_considered": 3, "windows_drifted": 2, "drifted_features": ["x"],
    }  # fmt: skip
    event = DriftDetected.model_validate(old)
    assert event.ranked_features == [] and event.importance_share_drifted is None
    row = drift_event_row(event)
    named = dict(zip(DRIFT_EVENTS.column_names, row, strict=True))
    assert (named["ranked_features"], named["importance_share_drifted"]) == ("[]", None)
    ranked = event.model_copy(
        update={
            "ranked_features": [RankedFeature(feature="x", importance=0.4, effect=2.0, score=0.8)],
            "importance_share_drifted": 0.4,
        }
    )
    row = drift_event_row(ranked)
    named = dict(zip(DRIFT_EVENTS.column_names, row, strict=True))
    assert (
        json.loads(named["ranked_features"])[0]["score"] == 0.8 and named["importance_share_drifted"] == 0.4
    )
    assert DRIFT_EVENTS.upgrades() == [
        "ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS ranked_features String",
        "ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS importance_share_drifted Nullable(Float64)",
        "ALTER TABLE drift_events ADD COLUMN IF NOT EXISTS estimated_accuracy_change Nullable(Float64)",
    ]


def test_the_setting_is_a_share_between_0_and_1_and_off_by_default() -> None:
    assert DriftThresholds().min_importance_share == 0.0
    with pytest.raises(ValidationError, match="min_importance_share"):
        DriftThresholds(min_importance_share=1.5)
