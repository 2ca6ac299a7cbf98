"""In-memory stand-ins for the monitor's ports, so its storing and judging run in unit tests.

``MemoryStore`` plays ClickHouse: it keeps every row written (by table, as dicts of the declared columns),
parses the raw prediction and label lines as the intake views do, and reads windows and checkpoints back
from them (deduplicated by ``event_id`` as ``FINAL`` would). ``MemoryPublisher`` keeps what would be sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import numpy as np

from services.monitor.domain.evaluation import DataWindow, LabelWindow
from services.monitor.domain.tables import Table
from services.monitor.domain.window_metrics import positive_class
from shared import wire

T = TypeVar("T")


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _text(value: Any) -> str:
    """A raw JSON value as the intake views store it in a ``String`` column."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    return json.dumps(value)


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) else math.nan


@dataclass
class MemoryStore:
    """``RowSink``, ``WindowReader`` and ``CheckpointReader`` over lists in memory."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    predictions: dict[Any, dict[str, Any]] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)
    refuse: Callable[[bytes], bool] = lambda line: False
    """Lines the "server" refuses although they passed the contract."""
    opened: int = 0
    failing_since: float | None = None
    last_error: str = ""
    busy_since: float | None = None

    # -- RowSink
    def open(self) -> None:
        self.opened += 1

    def write(self, table: Table, rows: Sequence[Sequence[Any]]) -> int:
        for row in rows:
            assert len(row) == len(table.columns), (table.name, row)
            self.rows.setdefault(table.name, []).append(dict(zip(table.column_names, row, strict=True)))
        return len(rows)

    def write_lines(self, table: str, lines: Sequence[bytes]) -> list[int]:
        refused = []
        for i, line in enumerate(lines):
            if self.refuse(line):
                refused.append(i)
                continue
            event = json.loads(line)
            if table == "predictions_intake":
                self.predictions[event["event_id"]] = event
            else:
                assert table == "labels_intake", table
                self.labels.append(event)
        return refused

    def write_events(self, table: Table, events: Sequence[Any]) -> list[int]:
        """Kept as the JSON the events encode to, so the windows are read back as the intake views parse it."""
        lines = [wire.encode(e) for e in events]
        return self.write_lines(f"{table.name}_intake", lines)

    def until_reachable(self, what: str, attempt: Callable[[], T]) -> T:
        return attempt()

    def close(self) -> None:
        pass

    def table(self, name: str) -> list[dict[str, Any]]:
        """The rows written to a table so far (empty if none)."""
        return self.rows.get(name, [])

    # -- WindowReader
    def _window(self, model: str, version: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        found = [
            e
            for e in self.predictions.values()
            if e["model_name"] == model
            and (e.get("model_version") or "") == version
            and start <= _time(e["occurred_at"]) < end
        ]
        return sorted(found, key=lambda e: _time(e["occurred_at"]))

    def data_window(
        self, model: str, version: str, start: datetime, end: datetime, *, probabilities: bool = False
    ) -> DataWindow:
        events = self._window(model, version, start, end)
        numeric: dict[str, list[float]] = {}
        categorical: dict[str, list[str]] = {}
        missing: dict[str, int] = {}
        logged: dict[str, list[float]] = {}
        for e in events:
            for name, value in (e.get("probabilities") or {}).items() if probabilities else ():
                logged.setdefault(name, []).append(float(value))
            for name, value in e["features"].items():
                if value is None:
                    missing[name] = missing.get(name, 0) + 1
                elif isinstance(value, str):
                    categorical.setdefault(name, []).append(value)
                else:
                    numeric.setdefault(name, []).append(_number(value))
        return DataWindow(
            start=start,
            end=end,
            count=len(events),
            latency_ms=np.asarray([_number(e.get("latency_ms")) for e in events], dtype=float),
            predictions=[_text(e["prediction"]) for e in events],
            prediction_num=np.asarray([_number(e["prediction"]) for e in events], dtype=float),
            numeric={k: np.asarray(v, dtype=float) for k, v in numeric.items()},
            categorical=categorical,
            missing=missing,
            probabilities={k: np.asarray(v, dtype=float) for k, v in logged.items()},
        )

    def label_window(self, model: str, version: str, start: datetime, end: datetime) -> LabelWindow:
        events = self._window(model, version, start, end)
        latest = {label["prediction_id"]: label for label in self.labels if label["model_name"] == model}
        joined = [(e, latest[e["prediction_id"]]) for e in events if e["prediction_id"] in latest]
        predictions = [_text(e["prediction"]) for e, _ in joined]
        labels = [_text(label["label"]) for _, label in joined]
        pos = positive_class(sorted(set(labels) | set(predictions)))
        probabilities = [e.get("probabilities") or {} for e, _ in joined]
        proba = None
        if pos is not None and probabilities and all(pos in p for p in probabilities):
            proba = np.asarray([p[pos] for p in probabilities], dtype=float)
        return LabelWindow(
            start=start,
            end=end,
            count=len(events) if joined else 0,  # as the reader: a window with no label is not counted
            labels=labels,
            label_num=np.asarray([_number(label["label"]) for _, label in joined], dtype=float),
            predictions=predictions,
            prediction_num=np.asarray([_number(e["prediction"]) for e, _ in joined], dtype=float),
            positive_proba=proba,
            delay_s=np.asarray(
                [
                    (_time(label["occurred_at"]) - _time(e["occurred_at"])).total_seconds()
                    for e, label in joined
                ],
                dtype=float,
            ),
        )

    def next_event_time(self, model: str, version: str, after: datetime) -> datetime | None:
        times = [
            _time(e["occurred_at"])
            for e in self.predictions.values()
            if e["model_name"] == model and (e.get("model_version") or "") == version
        ]
        upcoming = [t for t in times if t >= after]
        return min(upcoming) if upcoming else None

    def labelled_models(self, models: Sequence[str]) -> set[str]:
        return {label["model_name"] for label in self.labels} & set(models)

    # -- CheckpointReader
    def latest(self, models: Sequence[str]) -> dict[str, dict[str, Any]]:
        newest: dict[str, dict[str, Any]] = {}
        for row in self.table("monitor_progress"):
            held = newest.get(row["model_name"])
            if row["model_name"] in models and (
                held is None or row["source_offset"] >= held["source_offset"]
            ):
                newest[row["model_name"]] = row
        return {model: json.loads(row["versions"]) for model, row in newest.items()}


@dataclass
class MemoryPublisher:
    """``Publisher`` that keeps every (topic, key, value) sent."""

    sent: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    confirmed: int = 0

    async def start(self) -> None:
        pass

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))

    async def confirm(self) -> None:
        self.confirmed = len(self.sent)

    async def stop(self) -> None:
        pass

    def to(self, topic: str) -> list[bytes]:
        return [value for t, _, value in self.sent if t == topic]
