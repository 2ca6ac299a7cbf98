"""Open windows held by the worker that stored their events, so a closed window is judged without reading it
back from ClickHouse. Pure: events in, windows out.

A worker stores every prediction of the models it owns before it judges their windows, so it can keep each
open window's events and judge the window from them. It does so only for a window it saw **whole**: one that
starts after the newest event time the model's checkpoint held when this worker took the model over. Every
event stored before then is at or below that time (a checkpoint is saved before its batch's offsets are
committed, and a batch not committed is replayed to the new owner), so no stored event of such a window
went past this worker. Any other window (one that began before a restart or rebalance, or one dropped to
keep memory bounded) is read back from ClickHouse as before, so a restart judges every window exactly as
the reader would.

Events are deduplicated as ``predictions`` deduplicates them: by model, event time (milliseconds) and
``event_id``, the later copy kept. At most ``max_events`` events are held per worker; an event that would go
past that gives up its window (its held events are dropped and it is read back when it closes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from operator import itemgetter

import numpy as np

from services.monitor.domain.evaluation import DataWindow
from services.monitor.domain.event_columns import (
    KINDS,
    MISSING,
    NUMBER,
    NUMBERS,
    TEXT,
    feature_groups,
    milliseconds,
    output_columns,
)
from services.monitor.domain.progress import floor_ms
from shared.wire import PredictionWire

Key = tuple[int, int]
"""How ``predictions`` tells copies of one event apart within a model: its id and time (ms)."""


@dataclass
class _Model:
    whole_from_ms: int
    """Windows starting here or later were seen whole by this worker."""
    windows: dict[int, dict[Key, PredictionWire]] = field(default_factory=dict)
    """Window start (ms) -> the window's events, every version's, deduplicated."""
    given_up: set[int] = field(default_factory=set)
    """Window starts whose events are no longer held (memory bound): read back when they close."""


class HeldWindows:
    """The open windows of the models a worker owns, with the events it stored for them.

    >>> from datetime import UTC, datetime, timedelta
    >>> held = HeldWindows(length_ms=60_000, max_events=1_000)
    >>> at = datetime(2030, 1, 1, tzinfo=UTC)
    >>> events = [PredictionWire(model_name="m", model_version="1", prediction_id=str(i), prediction=0,
    ...                          occurred_at=at + timedelta(seconds=i), features={"x": i}) for i in range(90)]
    >>> held.take_over("m", None)
    >>> held.hold("m", events + events[:5], {"1": 0})  # a replayed copy counts once
    >>> held.held, len(held.events("m", "1", held.start_of(at)))
    (90, 60)
    >>> held.release("m", held.start_of(at) + 60_000); held.held
    30
    """

    def __init__(self, length_ms: int, max_events: int) -> None:
        if length_ms <= 0:
            raise ValueError(f"length_ms must be positive, got {length_ms}")
        if max_events < 0:
            raise ValueError(f"max_events must be 0 or more, got {max_events}")
        self.length_ms = length_ms
        self.max_events = max_events
        self.held = 0
        """Events held now, across every model (at most ``max_events``)."""
        self._models: dict[str, _Model] = {}

    def start_of(self, moment: datetime) -> int:
        """The start (ms) of the window holding ``moment``."""
        return floor_ms(int(milliseconds([moment])[0]), self.length_ms)

    def owns(self, model: str) -> bool:
        return model in self._models

    def take_over(self, model: str, stored_until_ms: int | None) -> None:
        """Start holding ``model``'s windows; ``stored_until_ms``: the newest event time its checkpoint held
        (None: no checkpoint, so every stored event of it comes to this worker)."""
        if model in self._models:
            return
        whole_from = (
            -(2**62)
            if stored_until_ms is None
            else floor_ms(stored_until_ms, self.length_ms) + self.length_ms
        )
        self._models[model] = _Model(whole_from)

    def hold(self, model: str, events: Sequence[PredictionWire], open_from: Mapping[str, int]) -> None:
        """Keep ``events`` (stored predictions of ``model``) in their windows.

        ``open_from``: per version, the start of its first window not judged yet; events of an earlier
        window, or of a window not seen whole, are not kept. Holding the same events again changes nothing.
        """
        state = self._models[model]
        if not events or self.max_events == 0:
            return
        times = milliseconds([e.occurred_at for e in events]).tolist()
        length, windows, given_up = self.length_ms, state.windows, state.given_up
        lowest = max(state.whole_from_ms, min(open_from.values(), default=state.whole_from_ms))
        for event, ms in zip(events, times, strict=True):
            start = ms - ms % length
            if start < lowest or start in given_up or start < open_from.get(event.model_version, start):
                continue
            window = windows.get(start)
            if window is None:
                windows[start] = window = {}
            key = (event.event_id.int, ms)
            if key in window:
                window[key] = event
                continue
            if self.held >= self.max_events:
                self.held -= len(window)
                del windows[start]
                given_up.add(start)
                continue
            window[key] = event
            self.held += 1

    def events(self, model: str, version: str, start_ms: int) -> list[PredictionWire] | None:
        """The version's events in the window starting at ``start_ms``, or None when they must be read back."""
        state = self._models.get(model)
        if (
            state is None
            or self.max_events == 0
            or start_ms < state.whole_from_ms
            or start_ms in state.given_up
        ):
            return None
        window = state.windows.get(start_ms)
        if window is None:
            return []
        return [e for e in window.values() if e.model_version == version]

    def release(self, model: str, judged_until_ms: int) -> None:
        """Drop the model's windows before ``judged_until_ms``: every version judged them."""
        state = self._models.get(model)
        if state is None:
            return
        for start in [s for s in state.windows if s < judged_until_ms]:
            self.held -= len(state.windows.pop(start))
        state.given_up = {s for s in state.given_up if s >= judged_until_ms}

    def forget(self) -> None:
        """Partitions were revoked: the next owner reads what it did not see."""
        self._models.clear()
        self.held = 0


def _feature_groups(events: Sequence[PredictionWire]) -> list[list[PredictionWire]]:
    """Events grouped by their set of feature names: one group, checked in C, when they all share it (one
    model's events do), otherwise ``feature_groups``."""
    first = events[0].features.keys()
    if all(map(first.__eq__, (e.features.keys() for e in events))):
        return [list(events)]
    return [[events[i] for i in group] for group in feature_groups(events)]


def data_window(
    events: Sequence[PredictionWire], start: datetime, end: datetime, *, probabilities: bool = False
) -> DataWindow:
    """The ``DataWindow`` ClickHouse would give back for ``events``: each value split by kind as the
    ``predictions`` table splits it (``event_columns``: numbers and booleans numeric, text categorical, null
    missing), one numpy column per feature of each group of events that share their feature names."""
    if not events:
        return DataWindow(start, end, 0, np.empty(0), [], np.empty(0))
    numeric: dict[str, list[np.ndarray]] = {}
    categorical: dict[str, list[str]] = {}
    missing: Counter[str] = Counter()
    ordered: list[PredictionWire] = []
    for group in _feature_groups(events):
        ordered += group
        names = list(group[0].features)
        rows, width = len(group), len(names)
        if width == 0:
            continue
        pick = itemgetter(*names)  # by name: events may list the same features in another order
        picked = map(pick, (e.features for e in group))
        flat = picked if width == 1 else chain.from_iterable(picked)
        values = np.fromiter(flat, dtype=object, count=rows * width).reshape(rows, width)
        for j, name in enumerate(names):
            column = values[:, j]
            found = set(map(type, column))
            if found <= NUMBERS:
                numeric.setdefault(name, []).append(column.astype(np.float64))
            elif found == {str}:
                categorical.setdefault(name, []).extend(column.tolist())
            elif found == {type(None)}:
                missing[name] += rows
            else:  # a feature that changes kind within the group: value by value
                kinds = np.fromiter(map(KINDS.__getitem__, map(type, column)), dtype=np.int8, count=rows)
                if (kinds == NUMBER).any():
                    numeric.setdefault(name, []).append(column[kinds == NUMBER].astype(np.float64))
                if (kinds == TEXT).any():
                    categorical.setdefault(name, []).extend(column[kinds == TEXT].tolist())
                if n := int((kinds == MISSING).sum()):
                    missing[name] += n
    text, number = output_columns([e.prediction for e in ordered])
    proba: dict[str, np.ndarray] = {}
    if probabilities:
        by_class: dict[str, list[float]] = {}
        for e in ordered:
            for k, v in (e.probabilities or {}).items():
                by_class.setdefault(k, []).append(v)
        proba = {k: np.asarray(v, dtype=float) for k, v in by_class.items()}
    return DataWindow(
        start=start,
        end=end,
        count=len(ordered),
        latency_ms=np.array([e.latency_ms for e in ordered], dtype=float),
        predictions=text,
        prediction_num=np.where(number.nulls.astype(bool), np.nan, number.values),
        numeric={k: v[0] if len(v) == 1 else np.concatenate(v) for k, v in numeric.items()},
        categorical=categorical,
        missing=dict(missing),
        probabilities=proba,
    )
