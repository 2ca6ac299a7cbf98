"""The monitor's storing and judging, through the service ``bootstrap`` builds, on in-memory ports.

Batches of predictions are stored and advanced as the Kafka loop would; the rows that would be written to
ClickHouse (``window_metrics``, ``drift_tests``, ``drift_events``, ``monitor_progress``) and the events that
would be announced are read back from the fakes.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import numpy as np
import pytest

from services.monitor.bootstrap import bootstrap
from services.monitor.domain.profiles import StaticProfiles, VersionReference
from services.monitor.errors import MonitorError
from services.monitor.service import Monitor
from shared import codec, wire
from shared.drift_thresholds import DriftThresholds
from shared.events import (
    DataQualityCounted,
    DriftDetected,
    DriftKind,
    EventDeadLettered,
    ModelVersionRegistered,
)
from shared.profile import build_profile
from shared.settings import Settings
from shared.wire import LabelWire, PredictionWire
from tests.unit.monitor_fakes import MemoryPublisher, MemoryStore

WINDOW = timedelta(minutes=1)
T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
PER_WINDOW = 300


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None


def _settings(columns: bool = False) -> Settings:
    return Settings(
        topic_prefix="t-",
        monitor_window_seconds=60,
        monitor_allowed_lateness_seconds=0,
        monitor_label_wait_seconds=0,
        monitor_store_columns=columns,
    )


def _profiles() -> StaticProfiles:
    rng = np.random.default_rng(0)
    profile = build_profile(
        {
            "x": rng.normal(0, 1, 5_000).tolist(),
            "plan": rng.choice(["free", "pro"], 5_000, p=[0.7, 0.3]).tolist(),
        }
    )
    t = DriftThresholds()
    return StaticProfiles({("churn", "1"): VersionReference(profile, t)}, t)


def _monitor(store: MemoryStore, publisher: MemoryPublisher, columns: bool = False) -> Monitor:
    """The service as ``python -m services.monitor`` builds it, with memory in place of ClickHouse and Kafka."""
    return bootstrap(
        _settings(columns),
        profiles=_profiles(),
        inserts=[store],
        judging=store,
        windows=store,
        checkpoints=store,
        publisher=publisher,
        worker="test-worker",
    )


def _window(index: int, shift: float, seed: int) -> list[PredictionWire]:
    """``PER_WINDOW`` predictions spread over window ``index``; ``x`` moved by ``shift``."""
    rng = np.random.default_rng(seed)
    start = T0 + index * WINDOW
    return [
        PredictionWire(
            event_id=uuid.uuid4(),
            occurred_at=start + WINDOW * i / PER_WINDOW,
            model_name="churn",
            model_version="1",
            prediction_id=f"p{index}-{i}",
            features={
                "x": float(rng.normal(shift, 1)),
                "plan": str(rng.choice(["free", "pro"], p=[0.7, 0.3])),
            },
            prediction=int(rng.random() < 0.5),
        )
        for i in range(PER_WINDOW)
    ]


class Feed:
    """Hands records to a monitor in batches, as the Kafka loop does (decode, store, advance)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.offsets: dict[str, int] = {}

    def records(self, topic: str, values: list[bytes | None]) -> list[Rec]:
        first = self.offsets.get(topic, 0)
        self.offsets[topic] = first + len(values)
        return [Rec(topic, 0, first + i, value) for i, value in enumerate(values)]

    def batch(self, **by_topic: list[Any]) -> None:
        topics = self.monitor.topics
        encoders = {
            "predictions": wire.encode,
            "labels": wire.encode,
            "data_quality": codec.encode,
            "dead_letter": codec.encode,
            "model_events": codec.encode,
        }
        records = {
            getattr(topics, name): self.records(
                getattr(topics, name), [v if isinstance(v, bytes) else encoders[name](v) for v in values]
            )
            for name, values in by_topic.items()
        }

        async def handle() -> None:
            stored = await self.monitor.store(self.monitor.decode(records))
            await self.monitor.advance(stored)

        asyncio.run(handle())


def _metric(store: MemoryStore, metric: str, feature: str = "") -> dict[datetime, float]:
    return {
        r["window_start"]: r["value"]
        for r in store.table("window_metrics")
        if r["metric"] == metric and r["feature"] == feature
    }


def test_stored_windows_are_judged_and_two_drifted_windows_of_three_announce_drift() -> None:
    store, publisher = MemoryStore(), MemoryPublisher()
    feed = Feed(_monitor(store, publisher))
    for index in range(6):
        feed.batch(predictions=_window(index, shift=0.0 if index < 3 else 1.5, seed=index))
    feed.batch(predictions=_window(6, shift=1.5, seed=6)[:1])  # its event time closes window 5

    assert len(store.predictions) == 6 * PER_WINDOW + 1
    starts = [T0 + i * WINDOW for i in range(6)]
    assert _metric(store, "count") == dict.fromkeys(starts, float(PER_WINDOW))
    assert store.opened == 0  # tables are created by the Kafka loop's start, not by storing

    drifted = {
        r["window_start"] for r in store.table("drift_tests") if r["feature"] == "x" and r["drifted"] == 1
    }
    assert drifted == set(starts[3:])
    assert {r["test"] for r in store.table("drift_tests") if r["feature"] == "x"} == {
        "ks",
        "wasserstein_norm",
        "psi",
    }
    assert not any(r["drifted"] for r in store.table("drift_tests") if r["feature"] == "plan")

    # K=2 of M=3: the second drifted window (4) decides; the cooldown keeps window 5 quiet
    (row,) = store.table("drift_events")
    assert row["event_type"] == "drift_detected" and row["kinds"] == ["feature"]
    assert (row["window_start"], row["window_end"]) == (starts[3], starts[5])
    assert row["drifted_features"] == ["x"]
    (sent,) = publisher.to("t-drift-events")
    event = codec.decode(sent, DriftDetected)
    assert event.event_id == row["event_id"] and event.windows_drifted == 2

    # a checkpoint per batch, the last one covering the newest offset and the next window to judge
    progress = store.latest(["churn"])["churn"]["1"]
    assert progress["next_window_ms"] == int(starts[5].timestamp() * 1000) + 60_000
    assert max(r["source_offset"] for r in store.table("monitor_progress")) == 6 * PER_WINDOW


def test_a_new_worker_resumes_from_the_checkpoint_without_judging_a_window_twice() -> None:
    store = MemoryStore()
    first = Feed(_monitor(store, MemoryPublisher()))
    for index in range(3):
        first.batch(predictions=_window(index, 0.0, seed=index))
    judged = len(_metric(store, "count"))
    assert judged == 2  # window 2 is still open

    publisher = MemoryPublisher()
    second = Feed(_monitor(store, publisher))  # e.g. after a rebalance: same store, nothing cached
    second.offsets = dict(first.offsets)
    second.batch(predictions=_window(3, 0.0, seed=3)[:1])
    counts = [r["window_start"] for r in store.table("window_metrics") if r["metric"] == "count"]
    assert counts == [T0, T0 + WINDOW, T0 + 2 * WINDOW]  # window 2 once, windows 0 and 1 not again
    assert publisher.sent == []


def _reads(store: MemoryStore) -> list[datetime]:
    """Counts the windows read back from the store (the rest are judged from the events in hand)."""
    starts: list[datetime] = []
    read = store.data_window

    def counted(model: str, version: str, start: datetime, end: datetime, **kw: Any) -> Any:
        starts.append(start)
        return read(model, version, start, end, **kw)

    store.data_window = counted  # type: ignore[method-assign]
    return starts


def test_windows_seen_whole_are_judged_from_the_events_in_hand_with_the_same_figures() -> None:
    held, read = MemoryStore(), MemoryStore()
    reads_held, reads_read = _reads(held), _reads(read)
    for store, held_events in ((held, 100_000), (read, 0)):
        monitor = bootstrap(
            _settings().model_copy(update={"monitor_held_events": held_events}),
            profiles=_profiles(), inserts=[store], judging=store, windows=store, checkpoints=store,
            publisher=MemoryPublisher(), worker="w",
        )  # fmt: skip
        feed = Feed(monitor)
        windows = [_window(index, 0.0 if index < 2 else 1.5, seed=index) for index in range(5)]
        for events in windows:
            feed.batch(predictions=events)
        feed.batch(predictions=windows[4][:50])  # a replayed piece: counted once either way
        feed.batch(predictions=_window(5, 0.0, seed=5)[:1])
    assert reads_held == [] and len(reads_read) == 5

    def figures(store: MemoryStore, table: str, *key: str) -> dict[tuple[Any, ...], Any]:
        return {tuple(r[k] for k in key): r for r in store.table(table)}

    for table, key, value in (
        ("window_metrics", ("window_start", "metric", "feature"), "value"),
        ("drift_tests", ("window_start", "feature", "test"), "statistic"),
    ):
        got, want = figures(held, table, *key), figures(read, table, *key)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k][value] == pytest.approx(want[k][value], rel=1e-9, abs=1e-12), (table, k)
    assert _metric(held, "count") == dict.fromkeys([T0 + i * WINDOW for i in range(5)], float(PER_WINDOW))
    assert [r["window_start"] for r in held.table("drift_events")] == [
        r["window_start"] for r in read.table("drift_events")
    ]


def test_a_worker_that_did_not_see_a_window_whole_reads_it_back() -> None:
    """A restart in the middle of window 1: the new worker holds only the window's second half."""
    store = MemoryStore()
    first = Feed(_monitor(store, MemoryPublisher()))
    first.batch(predictions=_window(0, 0.0, seed=0))
    first.batch(predictions=_window(1, 0.0, seed=1)[: PER_WINDOW // 2])

    reads = _reads(store)
    second = Feed(_monitor(store, MemoryPublisher()))  # the first worker's checkpoint, nothing in hand
    second.offsets = dict(first.offsets)
    second.batch(predictions=_window(1, 0.0, seed=1)[PER_WINDOW // 2 :])
    second.batch(predictions=_window(2, 0.0, seed=2))
    second.batch(predictions=_window(3, 0.0, seed=3)[:1])
    assert reads == [T0 + WINDOW]  # window 2, seen whole, from the events in hand
    assert _metric(store, "count") == dict.fromkeys([T0 + i * WINDOW for i in range(3)], float(PER_WINDOW))


def test_label_windows_are_judged_once_their_data_closed() -> None:
    store = MemoryStore()
    feed = Feed(_monitor(store, MemoryPublisher()))
    predictions = _window(0, 0.0, seed=0)
    feed.batch(predictions=predictions)
    labels = [
        LabelWire(
            model_name="churn",
            prediction_id=p.prediction_id,
            label=p.prediction if i % 10 else 1 - int(p.prediction),
            occurred_at=p.occurred_at + timedelta(seconds=5),
        )
        for i, p in enumerate(predictions)
    ]
    feed.batch(labels=labels, predictions=_window(1, 0.0, seed=1)[:1])
    assert _metric(store, "labelled") == {T0: float(PER_WINDOW)}
    assert _metric(store, "label_delay_p50_s") == {T0: 5.0}
    assert _metric(store, "accuracy") == {T0: pytest.approx(0.9)}


def test_a_model_without_labels_costs_one_question_per_batch_and_its_first_label_is_noticed() -> None:
    store = MemoryStore()
    asked: list[list[str]] = []
    read: list[datetime] = []
    labelled_models, label_window = store.labelled_models, store.label_window

    def asking(models: Any) -> set[str]:
        asked.append(list(models))
        return labelled_models(models)

    def reading(model: str, version: str, start: datetime, end: datetime) -> Any:
        read.append(start)
        return label_window(model, version, start, end)

    store.labelled_models, store.label_window = asking, reading  # type: ignore[method-assign]
    feed = Feed(_monitor(store, MemoryPublisher()))
    feed.batch(
        predictions=[*_window(0, 0.0, 0), *_window(1, 0.0, 1), *_window(2, 0.0, 2), *_window(3, 0.0, 3)[:1]]
    )
    assert (asked, read) == ([["churn"]], [])  # three label windows closed, one question, nothing read
    third = _window(3, 0.0, 3)
    labels = [
        LabelWire(
            model_name="churn", prediction_id=p.prediction_id, label=p.prediction, occurred_at=p.occurred_at
        )
        for p in third
    ]
    feed.batch(labels=labels, predictions=[*third[1:], *_window(4, 0.0, 4)[:1]])
    assert (asked, read) == ([["churn"], ["churn"]], [T0 + 3 * WINDOW])  # the first label is noticed
    assert _metric(store, "labelled") == {
        T0 + i * WINDOW: 0.0 if i < 3 else float(PER_WINDOW) for i in range(4)
    }
    feed.batch(predictions=[*_window(4, 0.0, 4)[1:], *_window(5, 0.0, 5)[:1]])
    assert len(asked) == 2 and read[-1] == T0 + 4 * WINDOW  # known to be labelled: not asked again


@pytest.mark.parametrize("columns", [False, True], ids=["json", "columns"])
def test_refused_and_invalid_records_are_dead_lettered_and_side_topics_are_stored(columns: bool) -> None:
    store = MemoryStore(refuse=lambda line: b'"p0-7"' in line)
    publisher = MemoryPublisher()
    feed = Feed(_monitor(store, publisher, columns))
    quality = DataQualityCounted(
        model_name="churn",
        model_version="1",
        interval_start=T0,
        interval_end=T0 + WINDOW,
        events=10,
        counts={"x": {"missing": 2, "type_error": 1}},
    )
    registered = ModelVersionRegistered(
        model_name="churn", version=1, created_by="ci", artifact_uri="s3://m/1", artifact_sha256="0" * 64
    )
    letter = EventDeadLettered(model_name="churn", source="http:ingest", reason="invalid_json", original=b"{")
    feed.batch(
        predictions=[*_window(0, 0.0, seed=0)[:10], b"not json"],
        data_quality=[quality],
        model_events=[registered, b"nope"],
        dead_letter=[letter],
    )
    assert len(store.predictions) == 9  # p0-7 refused by the store, the last record not even an event
    reasons = sorted(codec.decode(v, EventDeadLettered).reason for v in publisher.to("t-dead-letter"))
    assert reasons == ["invalid_event", "invalid_json", "refused_by_clickhouse"]
    assert sorted((r["feature"], r["problem"], r["count"]) for r in store.table("data_quality")) == [
        ("x", "missing", 2),
        ("x", "type_error", 1),
    ]
    (model_event,) = store.table("model_events")
    assert (model_event["event_type"], model_event["version"], model_event["actor"]) == (
        "model_version_registered",
        1,
        "ci",
    )
    assert [r["reason"] for r in store.table("dead_letters")] == ["invalid_json"]


def test_a_judging_sink_needs_its_readers() -> None:
    with pytest.raises(MonitorError):
        bootstrap(_settings(), profiles=_profiles(), inserts=[MemoryStore()], judging=MemoryStore(),
                  publisher=MemoryPublisher())  # fmt: skip


def _estimating_monitor() -> tuple[MemoryStore, MemoryPublisher, Feed]:
    """A monitor whose version (validation accuracy 0.9) carries a performance estimator."""
    from shared.profile import PerformanceEstimator

    profile = build_profile(
        {"x": np.random.default_rng(0).normal(0, 1, 2_000).tolist()},
        metrics={"accuracy": 0.9},
        estimator=PerformanceEstimator(task="classification", rows=2_000, classes=["0", "1"]),
    )
    t = DriftThresholds(min_window_size=100)
    store, publisher = MemoryStore(), MemoryPublisher()
    monitor = bootstrap(
        _settings(), profiles=StaticProfiles({("churn", "1"): VersionReference(profile, t)}, t),
        inserts=[store], judging=store, windows=store, checkpoints=store, publisher=publisher, worker="w",
    )  # fmt: skip
    return store, publisher, Feed(monitor)


def test_estimated_performance_is_written_and_announced_without_any_label() -> None:
    """A model logging probabilities: every data window gets estimated_* rows; when it loses confidence,
    two windows of three announce ``estimated_performance`` drift though no label ever arrived."""
    store, publisher, feed = _estimating_monitor()
    for index in range(6):
        sure = 0.95 if index < 3 else 0.6  # confident, then unsure: expected accuracy 0.95, then 0.6
        events = [
            msgspec.structs.replace(e, prediction=1, probabilities={"0": 1 - sure, "1": sure})
            for e in _window(index, shift=0.0, seed=index)
        ]
        feed.batch(predictions=events)
    feed.batch(predictions=_window(6, shift=0.0, seed=6)[:1])
    estimated = _metric(store, "estimated_accuracy")
    assert [round(v, 3) for _, v in sorted(estimated.items())] == [0.95, 0.95, 0.95, 0.6, 0.6, 0.6]
    (row,) = store.table("drift_events")
    assert row["kinds"] == ["estimated_performance"] and row["window_end"] == T0 + 5 * WINDOW
    (sent,) = publisher.to("t-drift-events")
    event = codec.decode(sent, DriftDetected)
    assert event.evidence[0].test == "cbpe" and event.evidence[0].statistic == pytest.approx(0.6)
    assert store.latest(["churn"])["churn"]["1"]["estimate"]["drifting"] is True


def test_an_input_drift_event_carries_what_it_is_estimated_to_cost_before_labels() -> None:
    """Inputs shift and the model grows unsure: the data drift event says the estimated accuracy is 0.3
    below validation (0.6 estimated vs 0.9), with no label anywhere."""
    store, publisher, feed = _estimating_monitor()
    for index in range(6):
        shifted = index >= 3
        events = [
            msgspec.structs.replace(
                e, prediction=1, probabilities={"0": 0.4, "1": 0.6} if shifted else {"0": 0.05, "1": 0.95}
            )
            for e in _window(index, shift=3.0 if shifted else 0.0, seed=index)
        ]
        feed.batch(predictions=events)
    feed.batch(predictions=_window(6, shift=0.0, seed=6)[:1])
    sent = [codec.decode(v, DriftDetected) for v in publisher.to("t-drift-events")]
    data = [e for e in sent if DriftKind.FEATURE in e.kinds]
    assert data, [e.kinds for e in sent]
    assert data[0].estimated_accuracy_change == pytest.approx(0.6 - 0.9)
    stored = [r for r in store.table("drift_events") if "feature" in r["kinds"]]
    assert stored[0]["estimated_accuracy_change"] == pytest.approx(-0.3)
