"""Training data: the one SQL query that selects a window, its shape as a DataFrame, and its snapshot.

The query joins the monitor's ``predictions`` to ``labels`` by ``prediction_id`` and is point-in-time
correct: only predictions made and labels known by the cut-off (``as_of``) are used, so re-running it later
reads the same rows. The exact rows trained and evaluated on are then frozen as a content-addressed
Parquet snapshot, which is what makes a version reproducible.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from services.trainer.domain.recipe import DataWindow
from shared.feature_schema import FeatureSchema

SPLIT = "__split__"
META_COLUMNS = ["prediction_id", "occurred_at", "labelled_at", "label", "label_num"]

TRAINING_QUERY = """
SELECT p.prediction_id AS prediction_id, p.occurred_at AS occurred_at,
       p.num_features AS num_features, p.cat_features AS cat_features,
       l.label AS label, l.label_num AS label_num, l.labelled_at AS labelled_at
FROM (
    SELECT prediction_id, occurred_at, num_features, cat_features
    FROM {predictions} FINAL
    WHERE model_name = {{model:String}}
      AND occurred_at >= {{start:DateTime64(3, 'UTC')}} AND occurred_at <= {{as_of:DateTime64(3, 'UTC')}}
) AS p
INNER JOIN (
    SELECT prediction_id, argMax(label, occurred_at) AS label, argMax(label_num, occurred_at) AS label_num,
           max(occurred_at) AS labelled_at
    FROM {labels} FINAL
    WHERE model_name = {{model:String}} AND occurred_at <= {{as_of:DateTime64(3, 'UTC')}}
    GROUP BY prediction_id
) AS l ON p.prediction_id = l.prediction_id
ORDER BY occurred_at DESC, prediction_id
LIMIT {{limit:UInt64}}
"""


@dataclass(frozen=True)
class WindowQuery:
    """The query and parameters that select a training window; recorded in the version's lineage."""

    sql: str
    parameters: dict[str, Any]

    def describe(self) -> str:
        """The query with its parameters, as one string for lineage."""
        values = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"{self.sql.strip()}\n-- parameters: {values}"


def window_query(
    model_name: str,
    window: DataWindow,
    as_of: datetime,
    drift_start: datetime | None = None,
    predictions_table: str = "predictions",
    labels_table: str = "labels",
) -> WindowQuery:
    """The one query for ``window`` with data up to ``as_of`` (labels known by then, too).

    With ``since_drift`` the query reaches back ``lookback_days`` as well, so older rows are there to mix in.
    """
    start = as_of - timedelta(days=window.lookback_days)
    if window.policy == "since_drift" and drift_start is not None:
        start = min(start, drift_start)
    sql = TRAINING_QUERY.format(predictions=predictions_table, labels=labels_table)
    return WindowQuery(
        sql=sql,
        parameters={"model": model_name, "start": start, "as_of": as_of, "limit": window.max_rows},
    )


def to_frame(rows: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """One column per feature from the query's maps, keeping each value as it arrived.

    A numeric feature that arrived as text stays text here, so validation can name it; booleans arrive
    as 1.0/0.0 (how the monitor stores them).
    """
    data: dict[str, list[Any]] = {}
    nums = rows["num_features"].tolist() if len(rows) else []
    cats = rows["cat_features"].tolist() if len(rows) else []
    for spec in schema.features:
        name = spec.name
        data[name] = [
            num[name] if name in num else cat.get(name) for num, cat in zip(nums, cats, strict=True)
        ]
    frame = pd.DataFrame(data, index=rows.index, dtype=object) if data else pd.DataFrame(index=rows.index)
    for column in META_COLUMNS:
        frame[column] = rows.get(column)
    return frame.sort_values(["occurred_at", "prediction_id"], kind="stable").reset_index(drop=True)


def select_window(
    frame: pd.DataFrame, window: DataWindow, drift_start: datetime | None, seed: int
) -> pd.DataFrame:
    """Apply the window policy to the rows the query returned (oldest first); seeded, so repeatable."""
    if window.policy != "since_drift" or drift_start is None or frame.empty:
        return frame
    recent = frame[frame["occurred_at"] >= pd.Timestamp(drift_start)]
    older = frame[frame["occurred_at"] < pd.Timestamp(drift_start)]
    wanted = round(len(recent) * window.older_share / (1 - window.older_share))
    if wanted < len(older):
        older = older.sample(n=wanted, random_state=seed).sort_index()
    return pd.concat([older, recent]).sort_index()


def split_holdout(frame: pd.DataFrame, holdout_share: float) -> pd.DataFrame:
    """Mark the most recent ``holdout_share`` of rows as held out (``__split__`` = 'holdout')."""
    frame = frame.sort_values(["occurred_at", "prediction_id"], kind="stable").reset_index(drop=True)
    cut = len(frame) - max(1, round(len(frame) * holdout_share))
    frame[SPLIT] = ["train" if i < cut else "holdout" for i in range(len(frame))]
    return frame


def coerce_features(frame: pd.DataFrame, schema: FeatureSchema, features: list[str]) -> pd.DataFrame:
    """Validated columns as model inputs: numbers as float (NaN missing), categories as str (None missing)."""
    out = frame.copy()
    for name in features:
        spec = schema.spec(name)
        if spec is not None and spec.type in ("categorical", "text"):
            out[name] = out[name].map(lambda v: None if v is None or v != v else str(v)).astype(object)
        else:
            out[name] = pd.to_numeric(out[name], errors="coerce").astype(float)
    return out


@dataclass(frozen=True)
class Snapshot:
    """A frozen dataset: its Parquet bytes and their sha256 (its name in the store)."""

    data: bytes
    sha256: str
    rows: int

    @property
    def key(self) -> str:
        return f"datasets/{self.sha256[:2]}/{self.sha256}.parquet"


def snapshot(frame: pd.DataFrame) -> Snapshot:
    """Parquet bytes of ``frame``, content-addressed: the same rows always give the same sha256."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    data = buffer.getvalue()
    return Snapshot(data=data, sha256=hashlib.sha256(data).hexdigest(), rows=len(frame))


def read_snapshot(data: bytes) -> pd.DataFrame:
    """The frame a snapshot froze."""
    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
