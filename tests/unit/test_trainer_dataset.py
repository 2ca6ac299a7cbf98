"""Training-data selection and snapshots: the query's parameters, window policies, content addresses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from services.trainer.domain.dataset import (
    SPLIT,
    select_window,
    snapshot,
    split_holdout,
    to_frame,
    window_query,
)
from services.trainer.domain.recipe import DataWindow
from shared.feature_schema import FeatureSchema, FeatureSpec

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SCHEMA = FeatureSchema(
    features=[FeatureSpec(name="x", type="numeric"), FeatureSpec(name="plan", type="categorical")]
)


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [float(i) for i in range(n)],
            "prediction_id": [f"p{i}" for i in range(n)],
            "occurred_at": [NOW - timedelta(minutes=n - i) for i in range(n)],
        }
    )


def test_the_query_is_point_in_time_and_bounded_by_the_window() -> None:
    query = window_query("churn", DataWindow(max_rows=500, lookback_days=7), as_of=NOW)
    assert query.parameters == {
        "model": "churn",
        "start": NOW - timedelta(days=7),
        "as_of": NOW,
        "limit": 500,
    }
    assert "occurred_at <= {as_of:DateTime64(3, 'UTC')}" in query.sql.split("FROM labels")[1]
    assert "JOIN" in query.sql and "FINAL" in query.sql
    drift_start = NOW - timedelta(days=40)
    longer = window_query("churn", DataWindow(policy="since_drift", lookback_days=7), NOW, drift_start)
    assert longer.parameters["start"] == drift_start


def test_feature_maps_become_one_column_per_feature_keeping_text_as_text() -> None:
    rows = pd.DataFrame(
        {
            "prediction_id": ["b", "a"],
            "occurred_at": [NOW, NOW - timedelta(seconds=1)],
            "num_features": [{"x": 1.5}, {}],
            "cat_features": [{"plan": "pro"}, {"x": "n/a", "plan": "free"}],
            "label": ["1", "0"],
            "label_num": [1.0, 0.0],
            "labelled_at": [NOW, NOW],
        }
    )
    frame = to_frame(rows, SCHEMA)
    assert frame["x"].tolist() == ["n/a", 1.5] and frame["plan"].tolist() == ["free", "pro"]
    assert frame["prediction_id"].tolist() == ["a", "b"]


def test_since_drift_mixes_in_the_configured_share_of_older_rows() -> None:
    frame = _frame(100)
    drift_start = NOW - timedelta(minutes=20)  # the 20 most recent rows are since the drift
    window = DataWindow(policy="since_drift", older_share=0.5)
    chosen = select_window(frame, window, drift_start, seed=0)
    assert len(chosen) == 40 and (chosen["occurred_at"] >= drift_start).sum() == 20
    assert select_window(frame, window, drift_start, seed=0).equals(chosen)


def test_the_most_recent_rows_are_held_out() -> None:
    split = split_holdout(_frame(10).sample(frac=1, random_state=1), 0.2)
    assert split[split[SPLIT] == "holdout"]["prediction_id"].tolist() == ["p8", "p9"]


def test_a_snapshot_is_named_by_its_content() -> None:
    first, again, other = snapshot(_frame(50)), snapshot(_frame(50)), snapshot(_frame(51))
    assert first.sha256 == again.sha256 != other.sha256
    assert first.key == f"datasets/{first.sha256[:2]}/{first.sha256}.parquet"
