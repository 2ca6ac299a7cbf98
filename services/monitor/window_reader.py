"""Reads one closed window of one model version back from ClickHouse, in columnar form for numpy.

ClickHouse already holds every event (deduplicated by ``FINAL``), so windows are read, not buffered in the
worker: a restarted worker re-reads exactly what the last one would have judged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from services.monitor.evaluation import DataWindow, LabelWindow
from services.monitor.metrics import positive_class

WINDOW = (
    "model_name = {model:String} AND model_version = {version:String} "
    "AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}"
)


def _params(model: str, version: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"model": model, "version": version, "start": start, "end": end}


def _floats(values: Any) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def read_data_window(client: Any, model: str, version: str, start: datetime, end: datetime) -> DataWindow:
    """Outputs, latencies and every feature of the window (four columnar queries, no per-row Python)."""
    p = _params(model, version, start, end)
    base = client.query(
        f"SELECT prediction, prediction_num, latency_ms FROM predictions FINAL WHERE {WINDOW}", parameters=p
    ).result_columns
    predictions, prediction_num, latency = base if base else ([], [], [])
    numeric = client.query(
        "SELECT k, groupArray(v) FROM (SELECT k, v FROM predictions FINAL "
        f"ARRAY JOIN mapKeys(num_features) AS k, mapValues(num_features) AS v WHERE {WINDOW}) GROUP BY k",
        parameters=p,
    ).result_rows
    categorical = client.query(
        "SELECT k, groupArray(v) FROM (SELECT k, v FROM predictions FINAL "
        f"ARRAY JOIN mapKeys(cat_features) AS k, mapValues(cat_features) AS v WHERE {WINDOW}) GROUP BY k",
        parameters=p,
    ).result_rows
    missing = client.query(
        f"SELECT m, count() FROM predictions FINAL ARRAY JOIN missing_features AS m WHERE {WINDOW} GROUP BY m",
        parameters=p,
    ).result_rows
    return DataWindow(
        start=start,
        end=end,
        count=len(predictions),
        latency_ms=_floats(latency),
        predictions=list(predictions),
        prediction_num=_floats(prediction_num),
        numeric={k: np.asarray(v, dtype=float) for k, v in numeric},
        categorical={k: list(v) for k, v in categorical},
        missing={k: int(n) for k, n in missing},
    )


def read_label_window(client: Any, model: str, version: str, start: datetime, end: datetime) -> LabelWindow:
    """The window's predictions that have a label, in event-time order, with each label's delay."""
    p = _params(model, version, start, end)
    count = int(client.command(f"SELECT count() FROM predictions FINAL WHERE {WINDOW}", parameters=p) or 0)
    cols = client.query(
        "SELECT p.prediction, p.prediction_num, p.probabilities, l.label, l.label_num, "
        "dateDiff('millisecond', p.occurred_at, l.labelled_at) / 1000.0 "
        f"FROM (SELECT prediction_id, prediction, prediction_num, probabilities, occurred_at "
        f"      FROM predictions FINAL WHERE {WINDOW}) AS p "
        "INNER JOIN (SELECT prediction_id, argMax(label, ingested_at) AS label, "
        "            argMax(label_num, ingested_at) AS label_num, min(occurred_at) AS labelled_at "
        "            FROM labels FINAL WHERE model_name = {model:String} AND prediction_id IN "
        f"            (SELECT prediction_id FROM predictions WHERE {WINDOW}) GROUP BY prediction_id) AS l "
        "ON p.prediction_id = l.prediction_id ORDER BY p.occurred_at",
        parameters=p,
    ).result_columns
    predictions, prediction_num, probabilities, labels, label_num, delay = (
        cols if cols else ([], [], [], [], [], [])
    )
    classes = sorted(set(labels) | set(predictions))
    pos = positive_class(classes)
    proba = None
    if pos is not None and probabilities and all(pos in (row or {}) for row in probabilities):
        proba = np.asarray([row[pos] for row in probabilities], dtype=float)
    return LabelWindow(
        start=start,
        end=end,
        count=count,
        labels=list(labels),
        label_num=_floats(label_num),
        predictions=list(predictions),
        prediction_num=_floats(prediction_num),
        positive_proba=proba,
        delay_s=_floats(delay),
    )
