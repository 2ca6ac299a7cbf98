"""Reads one closed window of one model version back from ClickHouse, in columnar form for numpy.

ClickHouse holds every event (deduplicated by ``FINAL``): a window the worker did not see whole (it began
before a restart or rebalance, or went past the memory bound) is read here, so a restarted worker judges
exactly what the last one would have. A window it saw whole is judged from the events in hand
(``domain/held_windows.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow.compute as pc

from services.monitor.adapters.clickhouse.sink import ClickHouseSink
from services.monitor.domain.evaluation import DataWindow, LabelWindow
from services.monitor.domain.window_metrics import positive_class

WINDOW = (
    "model_name = {model:String} AND model_version = {version:String} "
    "AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}"
)


def _params(model: str, version: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {"model": model, "version": version, "start": start, "end": end}


def _floats(values: Any) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in values], dtype=float)


def read_data_window(
    client: Any, model: str, version: str, start: datetime, end: datetime, *, probabilities: bool = False
) -> DataWindow:
    """Outputs, latencies and every feature of the window, in one Arrow query split by numpy (no per-row Python).

    One scan instead of one per feature kind: the server reads the window once, and the maps arrive as flat
    key and value arrays that are grouped by key without building a dict per row. The logged class
    probabilities are read only when asked for (a version whose performance is estimated).
    """
    table = client.query_arrow(
        "SELECT prediction, prediction_num, latency_ms, num_features, cat_features, missing_features"
        + (", probabilities" if probabilities else "")
        + f" FROM predictions FINAL WHERE {WINDOW}",
        parameters=_params(model, version, start, end),
    )
    if table.num_rows == 0:
        return DataWindow(start, end, 0, np.empty(0), [], np.empty(0))
    numeric = table.column("num_features").combine_chunks()
    categorical = table.column("cat_features").combine_chunks()
    missing = table.column("missing_features").combine_chunks().flatten().to_pylist()
    proba = table.column("probabilities").combine_chunks() if probabilities else None
    return DataWindow(
        start=start,
        end=end,
        count=table.num_rows,
        latency_ms=_arrow_floats(table.column("latency_ms")),
        predictions=table.column("prediction").to_pylist(),
        prediction_num=_arrow_floats(table.column("prediction_num")),
        numeric={k: np.asarray(v, dtype=float) for k, v in _by_key(numeric.keys, numeric.items).items()},
        categorical={k: v.tolist() for k, v in _by_key(categorical.keys, categorical.items).items()},
        missing=dict(Counter(missing)),
        probabilities={}
        if proba is None
        else {k: np.asarray(v, dtype=float) for k, v in _by_key(proba.keys, proba.items).items()},
    )


def next_event_time(client: Any, model: str, version: str, after: datetime) -> datetime | None:
    """When the version's first event at or after ``after`` happened (None: it has none yet)."""
    found = client.query(
        "SELECT minOrNull(occurred_at) FROM predictions WHERE model_name = {model:String} "
        "AND model_version = {version:String} AND occurred_at >= {after:DateTime64(3, 'UTC')}",
        parameters={"model": model, "version": version, "after": after},
    ).result_rows
    return found[0][0] if found and found[0][0] is not None else None


def _arrow_floats(column: Any) -> np.ndarray:
    """A nullable Float64 column as a float array, NULL as NaN."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)


def _by_key(keys: Any, values: Any) -> dict[str, np.ndarray]:
    """Flattened map entries grouped by key, each group in row order."""
    encoded = pc.dictionary_encode(keys)
    if len(encoded.dictionary) == 0:  # no row has this kind of feature
        return {}
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    flat = values.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=len(encoded.dictionary)))[:-1]
    return dict(zip(encoded.dictionary.to_pylist(), np.split(flat[order], bounds), strict=True))


LABELS_OF_WINDOW = (
    "SELECT prediction_id, argMax(label, ingested_at), argMax(label_num, ingested_at), min(occurred_at) "
    "FROM labels FINAL WHERE model_name = {model:String} AND prediction_id IN "
    f"(SELECT prediction_id FROM predictions WHERE {WINDOW}) GROUP BY prediction_id"
)


LABELLED_MODELS = (
    "SELECT model_name FROM labels WHERE model_name IN {models:Array(String)} LIMIT 1 BY model_name"
)
"""Which of the models have any label: asked once per batch for the models not yet seen with labels, since
many models never get ground truth, and for them the window's lookup would scan its ids to find none."""


def read_label_window(client: Any, model: str, version: str, start: datetime, end: datetime) -> LabelWindow:
    """The window's predictions that have a label, in event-time order, with each label's delay.

    Read only for a model that has labels (``LABELLED_MODELS`` says which). A window none of whose
    predictions has a label yet is not counted (its count is 0): its coverage is 0 whatever the count, and
    counting it was a scan of the window with ``FINAL``, the largest part of judging a window once its data
    no longer had to be read back (docs/monitor.md).
    """
    p = _params(model, version, start, end)
    labels = {row[0]: row[1:] for row in client.query(LABELS_OF_WINDOW, parameters=p).result_rows}
    if not labels:
        return _label_window(start, end, 0, [])
    window = client.query(
        "SELECT prediction_id, prediction, prediction_num, probabilities, occurred_at "
        f"FROM predictions FINAL WHERE {WINDOW} ORDER BY occurred_at",
        parameters=p,
    ).result_rows
    joined = [(*row[1:], *labels[row[0]]) for row in window if row[0] in labels]
    return _label_window(start, end, len(window), joined)


def _label_window(start: datetime, end: datetime, count: int, joined: list[tuple[Any, ...]]) -> LabelWindow:
    """``joined``: (prediction, prediction_num, probabilities, occurred_at, label, label_num, labelled_at)."""
    predictions = [row[0] for row in joined]
    probabilities = [row[2] for row in joined]
    labels = [row[4] for row in joined]
    classes = sorted(set(labels) | set(predictions))
    pos = positive_class(classes)
    proba = None
    if pos is not None and probabilities and all(pos in (row or {}) for row in probabilities):
        proba = np.asarray([row[pos] for row in probabilities], dtype=float)
    return LabelWindow(
        start=start,
        end=end,
        count=count,
        labels=labels,
        label_num=_floats([row[5] for row in joined]),
        predictions=predictions,
        prediction_num=_floats([row[1] for row in joined]),
        positive_proba=proba,
        delay_s=np.asarray([(row[6] - row[3]).total_seconds() for row in joined], dtype=float),
    )


class ClickHouseWindowReader:
    """The service's ``WindowReader``: windows read through a sink's client (the judging one, so never in
    parallel with the batch being inserted)."""

    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink

    def data_window(
        self, model: str, version: str, start: datetime, end: datetime, *, probabilities: bool = False
    ) -> DataWindow:
        with self.sink.waits.timing():
            return read_data_window(self.sink.client, model, version, start, end, probabilities=probabilities)

    def label_window(self, model: str, version: str, start: datetime, end: datetime) -> LabelWindow:
        with self.sink.waits.timing():
            return read_label_window(self.sink.client, model, version, start, end)

    def next_event_time(self, model: str, version: str, after: datetime) -> datetime | None:
        with self.sink.waits.timing():
            return next_event_time(self.sink.client, model, version, after)

    def labelled_models(self, models: Sequence[str]) -> set[str]:
        if not models:
            return set()
        with self.sink.waits.timing():
            rows = self.sink.client.query(LABELLED_MODELS, parameters={"models": list(models)}).result_rows
        return {row[0] for row in rows}
