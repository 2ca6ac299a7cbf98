"""Windows judged from the events a worker holds: the same window as reading it back, copies counted once,
only windows seen whole, and memory bounded."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from services.monitor.domain.evaluation import DataWindow
from services.monitor.domain.held_windows import HeldWindows, data_window
from shared import wire
from shared.wire import PredictionWire
from tests.unit.monitor_fakes import MemoryStore

LENGTH = timedelta(minutes=1)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


def _event(i: int, *, at: datetime | None = None, version: str = "1", **fields: Any) -> PredictionWire:
    return PredictionWire(
        event_id=fields.pop("event_id", uuid.uuid4()),
        occurred_at=at or T0 + LENGTH * (i % 60) / 60,
        model_name="m",
        model_version=version,
        prediction_id=f"p{i}",
        features=fields.pop("features", {"x": float(i)}),
        prediction=fields.pop("prediction", i % 2),
        **fields,
    )


def _sorted(values: Any) -> list[str]:
    """Values in a comparable order, NaN (a null) equal to NaN."""
    return sorted(
        map(repr, np.asarray(values, dtype=float).tolist() if isinstance(values, np.ndarray) else values)
    )


def _same(a: DataWindow, b: DataWindow) -> None:
    assert a.count == b.count
    for name in ("latency_ms", "prediction_num", "predictions"):
        assert _sorted(getattr(a, name)) == _sorted(getattr(b, name)), name
    for name in ("numeric", "categorical", "probabilities"):
        got, want = getattr(a, name), getattr(b, name)
        assert {k: _sorted(v) for k, v in got.items()} == {k: _sorted(v) for k, v in want.items()}, name
    assert a.missing == b.missing


def test_a_window_built_from_held_events_is_the_window_read_back() -> None:
    """Every kind a feature or an output can take, and features that change kind from event to event."""
    rng = random.Random(7)
    kinds = [lambda: rng.gauss(0, 1), lambda: rng.randint(-5, 5), lambda: rng.random() < 0.5,
             lambda: rng.choice(["a", "b", "ü"]), lambda: None]  # fmt: skip
    events = []
    for i in range(400):
        features: dict[str, Any] = {
            "num": rng.gauss(0, 1),
            "cat": rng.choice(["x", "y"]),
            "mixed": kinds[i % 5](),
        }
        if i % 3 == 0:  # another set of feature names, in another order
            features = {"extra": rng.random() < 0.3, **dict(reversed(list(features.items())))}
        elif i % 3 == 1:  # the same names in another order
            features = dict(reversed(list(features.items())))
        if i % 50 == 0:
            features = {}
        elif i % 50 == 25:
            features = {"solo": rng.random()}
        events.append(
            _event(
                i,
                features=features,
                prediction=[True, 3, 0.25, "yes"][i % 4],
                latency_ms=None if i % 7 == 0 else float(i),
                probabilities={"0": 0.25, "1": 0.75} if i % 2 else {"1": 0.5},
            )
        )
    end = T0 + LENGTH
    same_names = [e for e in events if set(e.features) == {"num", "cat", "mixed"}]  # in two orders
    for given in (events, same_names):
        store = MemoryStore()
        store.write_lines("predictions_intake", [wire.encode(e) for e in given])
        for probabilities in (False, True):
            held = data_window(given, T0, end, probabilities=probabilities)
            read = store.data_window("m", "1", T0, end, probabilities=probabilities)
            _same(held, read)
    assert data_window([], T0, end).count == 0


def test_replayed_copies_count_once_and_the_later_copy_replaces_the_first() -> None:
    held = HeldWindows(60_000, 1_000)
    held.take_over("m", None)
    events = [_event(i) for i in range(50)]
    held.hold("m", events, {"1": MS0})
    again = [_event(0, event_id=events[0].event_id, at=events[0].occurred_at, features={"x": 99.0})]
    held.hold("m", events + again, {"1": MS0})  # the batch replayed after a crash, then a newer copy
    window = held.events("m", "1", MS0)
    assert window is not None and len(window) == 50 and held.held == 50
    assert 99.0 in [e.features["x"] for e in window] and 0.0 not in [e.features["x"] for e in window]


def test_only_windows_seen_whole_are_held_and_judged_windows_are_not_held_again() -> None:
    held = HeldWindows(60_000, 1_000)
    # taken over from a checkpoint whose newest event is 30 s into the first window
    held.take_over("m", MS0 + 30_000)
    events = [_event(i, at=T0 + timedelta(seconds=i)) for i in range(30, 150)]
    held.hold("m", events, {"1": MS0})
    assert held.events("m", "1", MS0) is None  # began before this worker: read back
    second = held.events("m", "1", MS0 + 60_000)
    assert second is not None and len(second) == 60
    assert held.events("m", "2", MS0 + 60_000) == []  # another version's view of the window: empty
    held.release("m", MS0 + 120_000)
    assert held.held == 30
    held.hold("m", events, {"1": MS0 + 120_000})  # late copies of judged windows are not kept again
    assert held.held == 30
    held.forget()
    assert held.held == 0 and held.events("m", "1", MS0 + 120_000) is None


def test_memory_stays_bounded_and_a_window_past_the_bound_is_read_back() -> None:
    held = HeldWindows(60_000, 100)
    held.take_over("m", None)
    for batch in range(5):  # 5 batches of 50 events over windows 0, 1 and 2
        held.hold(
            "m", [_event(i, at=T0 + timedelta(seconds=batch * 36 + i * 0.7)) for i in range(50)], {"1": MS0}
        )
        assert held.held <= 100
    assert len(held.events("m", "1", MS0) or []) == 85  # filled first, kept whole
    assert held.events("m", "1", MS0 + 60_000) is None  # went past the bound: read back
    assert held.events("m", "1", MS0 + 120_000) is None
    held.release("m", MS0 + 180_000)
    assert held.held == 0
    held.hold("m", [_event(1, at=T0 + timedelta(minutes=3))], {"1": MS0 + 180_000})
    assert held.held == 1  # once released, windows are held again


def test_holding_nothing_reads_every_window_back() -> None:
    held = HeldWindows(60_000, 0)
    held.take_over("m", None)
    held.hold("m", [_event(1)], {"1": MS0})
    assert held.held == 0
    assert held.events("m", "1", MS0) is None  # nothing held, so not judged as an empty window
    with pytest.raises(ValueError, match="max_events"):
        HeldWindows(60_000, -1)
