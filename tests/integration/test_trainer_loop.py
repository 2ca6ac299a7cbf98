"""The trainer on the real stack: Kafka, the embedded ClickHouse, a registry process and a trainer process.

A drift burst leads to one run, a registered candidate with lineage and a promotion announced on
``model-events``; a challenger no better stays a candidate; text in a numeric feature is rejected with a
report; the version's snapshot reproduces its predictions.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from driftloop.clickhouse_server import start_clickhouse_server
from driftloop.process import ManagedProcess, free_port, spawn
from services.monitor.adapters.clickhouse.storage import schema as monitor_schema
from services.trainer.domain.dataset import SPLIT, coerce_features, read_snapshot, split_holdout
from services.trainer.domain.recipe import build_estimator, parse_recipe
from services.trainer.domain.training import predict
from services.trainer.service import reproduce_predictions
from shared import wire
from shared.artifacts import file_uri_path
from shared.clickhouse import clickhouse_client
from shared.codec import decode_any, encode
from shared.events import (
    AliasChanged,
    DriftDetected,
    DriftKind,
    Event,
    EventDeadLettered,
    RetrainModel,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
)
from shared.feature_schema import FeatureSchema, FeatureSpec
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.forwarder import Forwarder
from tests.integration.monitor_worker import settings_env

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 180.0
ROWS = 1500
SCHEMA = FeatureSchema(
    features=[
        FeatureSpec(name="x", type="numeric"),
        FeatureSpec(name="z", type="numeric"),
        FeatureSpec(name="plan", type="categorical"),
    ]
)
RECIPE: dict[str, Any] = {"validation": {"min_rows": 100}, "promotion": {"min_improvement": 0.01}}


@dataclass(frozen=True)
class Stack:
    settings: Settings
    registry: httpx.Client
    trainer: ManagedProcess
    trainer_web: str


def _wait_http(url: str, process: ManagedProcess) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError(f"{process.name} did not start; see {process.log_path}")


@pytest.fixture(scope="module")
def stack(kafka: Any, clickhouse_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("trainer")
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        clickhouse_url=clickhouse_server.url,
        clickhouse_database=f"t_{uuid.uuid4().hex[:8]}",
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}-",
        data_dir=root,
        kafka_partitions=2,
        registry_url=f"http://127.0.0.1:{free_port()}",
        registry_allow_anonymous_writes=True,
        registry_relay_interval=0.1,
    )
    topics = topic_names(settings.topic_prefix)
    web_port = free_port()
    create_topics(
        kafka.bootstrap,
        [topics.drift_events, topics.training_runs, topics.model_events, topics.dead_letter],
        2,
        1,
    )
    client = clickhouse_client(settings)
    for statement in monitor_schema():
        client.command(statement)
    client.close()
    env = {
        **settings_env(settings),
        "DRIFTLOOP_TRAINER_DEBOUNCE_SECONDS": "1",
        "DRIFTLOOP_LOG_LEVEL": "INFO",
        "DRIFTLOOP_TRAINER_WEB_PORT": str(web_port),
    }
    registry = spawn(
        "registry", [sys.executable, "-m", "services.registry"], root / "registry.log", env=env, cwd=ROOT
    )
    trainer = None
    try:
        _wait_http(f"{settings.registry_url}/healthz", registry)
        trainer = spawn(
            "trainer", [sys.executable, "-m", "services.trainer"], root / "trainer.log", env=env, cwd=ROOT
        )
        with httpx.Client(base_url=settings.registry_url, timeout=60) as http:
            yield Stack(settings, http, trainer, f"http://127.0.0.1:{web_port}")
    finally:
        if trainer is not None:
            trainer.stop()
        registry.stop()


def _rows(n: int, seed: int, flip: bool) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"x": rng.normal(size=n), "z": rng.normal(size=n), "plan": rng.choice(["free", "pro"], n)}
    )
    labels = ((frame["x"] > 0) ^ flip).astype(int).to_numpy()
    return frame, labels


def _write_labelled(settings: Settings, model: str, n: int, now: datetime, **kwargs: Any) -> list[str]:
    """Predictions and labels through the monitor's intake tables; returns the prediction ids."""
    text_from = kwargs.pop("text_from", None)
    label_delay = kwargs.pop("label_delay", timedelta(seconds=1))
    prefix = kwargs.pop("prefix", "p")
    frame, labels = _rows(n, **kwargs)
    predictions, truths, ids = [], [], []
    for i, row in enumerate(frame.itertuples(index=False)):
        at = now - timedelta(seconds=2 * (n - i))
        pid = f"{model}-{prefix}{i}"
        ids.append(pid)
        x: float | str = float(row.x) if text_from is None or i < text_from else "n/a"
        features = {"x": x, "z": float(row.z), "plan": str(row.plan)}
        event = wire.PredictionWire(
            model_name=model,
            model_version="1",
            prediction_id=pid,
            occurred_at=at,
            features=features,
            prediction=0,
        )
        predictions.append([wire.encode(event).decode()])
        label = wire.LabelWire(
            model_name=model, prediction_id=pid, occurred_at=at + label_delay, label=int(labels[i])
        )
        truths.append([wire.encode(label).decode()])
    client = clickhouse_client(settings)
    client.insert("predictions_intake", predictions, column_names=["line"])
    client.insert("labels_intake", truths, column_names=["line"])
    client.close()
    return ids


def _register(stack: Stack, model: str, champion_flip: bool | None) -> None:
    body = {"name": model, "feature_schema": SCHEMA.model_dump(), "training_recipe": RECIPE}
    stack.registry.post("/models", json=body).raise_for_status()
    if champion_flip is None:
        return
    frame, labels = _rows(
        1000, seed=99, flip=champion_flip
    )  # the old world: the label followed x the other way
    frame["label"], frame["occurred_at"], frame["prediction_id"] = labels.astype(str), 0, range(1000)
    recipe = parse_recipe(RECIPE)
    data = split_holdout(coerce_features(frame, SCHEMA, SCHEMA.names), 0.01)
    champion = build_estimator(recipe, SCHEMA)
    champion.fit(data[SCHEMA.names], data["label"])
    buffer = io.BytesIO()
    joblib.dump(champion, buffer)
    stack.registry.post(
        f"/models/{model}/versions/upload", files={"artifact": ("m.joblib", buffer.getvalue())}
    ).raise_for_status()
    stack.registry.put(f"/models/{model}/aliases/production", json={"version": 1}).raise_for_status()


def _send(settings: Settings, topic: str, events: list[Event]) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for event in events:
                await producer.send_and_wait(topic, encode(event), key=event.key)
        finally:
            await producer.stop()

    asyncio.run(produce())


def _read_until(
    settings: Settings, topic: str, model: str, done: Callable[[list[Event]], bool]
) -> list[Event]:
    """``model``'s events on ``topic`` from the start, polled until ``done`` holds (or the deadline passes)."""

    async def consume() -> list[Event]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            group_id=f"g-{uuid.uuid4().hex}",
        )
        await consumer.start()
        seen: list[Event] = []
        try:
            deadline = time.monotonic() + DEADLINE_S
            while not done(seen) and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen += [e for r in records if (e := decode_any(r.value or b"")).model_name == model]
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(consume())


def _drift(model: str, now: datetime) -> DriftDetected:
    return DriftDetected(
        model_name=model,
        model_version="1",
        kinds=[DriftKind.PERFORMANCE],
        severity=0.4,
        window_start=now - timedelta(minutes=10),
        window_end=now,
        windows_considered=3,
        windows_drifted=2,
    )


def _ended(kind: type[Event], count: int = 1) -> Callable[[list[Event]], bool]:
    return lambda seen: sum(isinstance(e, kind) for e in seen) >= count


def test_a_drift_burst_trains_once_registers_lineage_and_promotes_a_better_model(stack: Stack) -> None:
    settings, topics = stack.settings, topic_names(stack.settings.topic_prefix)
    model = f"churn-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    _register(stack, model, champion_flip=True)
    _write_labelled(settings, model, ROWS, now, seed=1, flip=False)
    # labels not yet known at training time must not be trained on (point in time)
    future = _write_labelled(
        settings, model, 50, now, seed=2, flip=True, prefix="late", label_delay=timedelta(days=1)
    )

    burst = [_drift(model, now) for _ in range(3)]
    _send(settings, topics.drift_events, burst)
    runs = _read_until(settings, topics.training_runs, model, _ended(TrainingRunFinished))
    finished = next(e for e in runs if isinstance(e, TrainingRunFinished))
    assert finished.promoted, runs
    assert finished.champion_score is not None and finished.challenger_score > finished.champion_score

    version = stack.registry.get(f"/models/{model}/versions/{finished.model_version}").json()
    lineage = version["lineage"]
    assert lineage["drift_event_id"] in {str(e.event_id) for e in burst}
    assert lineage["dataset_sha256"] and lineage["code_version"] and "INNER JOIN" in lineage["dataset_query"]
    assert lineage["training_run_id"] == str(finished.run_id) and lineage["parent_version"] == 1
    assert version["has_reference_profile"] and "accuracy" in version["metrics"]
    assert set(version["params"]["cost"]) >= {"wall_s", "cpu_s", "peak_memory_mb", "rows"}
    assert set(version["aliases"]) == {"candidate", "production"}

    snapshot = file_uri_path(lineage["dataset_uri"]).read_bytes()
    frame = read_snapshot(snapshot)
    assert len(frame) == ROWS and not set(future) & set(frame["prediction_id"])

    model_events = _read_until(
        settings,
        topics.model_events,
        model,
        lambda seen: any(
            isinstance(e, AliasChanged) and e.alias == "production" and e.version == 2 for e in seen
        ),
    )
    assert any(
        isinstance(e, AliasChanged) and e.alias == "production" and e.version == 2 for e in model_events
    )

    # the snapshot reproduces the registered model's predictions
    artifact = stack.registry.get(f"/models/{model}/versions/{finished.model_version}/artifact").content
    recipe = parse_recipe(version["params"]["recipe"])
    holdout = frame[frame[SPLIT] == "holdout"]
    assert reproduce_predictions(snapshot, recipe, SCHEMA) == predict(
        joblib.load(io.BytesIO(artifact)), holdout, recipe, SCHEMA
    )

    # a manual retrain on the same data is no better: candidate, not production; and the burst was one run
    _send(settings, topics.training_runs, [RetrainModel(model_name=model, reason="manual")])
    runs = _read_until(settings, topics.training_runs, model, _ended(TrainingRunFinished, 2))
    second = [e for e in runs if isinstance(e, TrainingRunFinished)][1]
    assert not second.promoted
    assert sum(isinstance(e, TrainingRunStarted) for e in runs) == 2
    aliases = stack.registry.get(f"/models/{model}").json()["aliases"]
    assert aliases == {"production": 2, "candidate": int(second.model_version)}

    # every run's outcome and cost is queryable in ClickHouse
    client = clickhouse_client(settings)
    recorded = client.query(
        "SELECT status, promoted, rows FROM training_runs FINAL WHERE model_name = {m:String} ORDER BY started_at",
        parameters={"m": model},
    ).result_rows
    client.close()
    assert recorded == [("finished", 1, ROWS), ("finished", 0, ROWS)]


def test_text_in_a_numeric_feature_rejects_the_run_with_a_report(stack: Stack) -> None:
    settings, topics = stack.settings, topic_names(stack.settings.topic_prefix)
    model = f"broken-{uuid.uuid4().hex[:6]}"
    _register(stack, model, champion_flip=None)
    _write_labelled(settings, model, 600, datetime.now(UTC), seed=3, flip=False, text_from=500)
    _send(settings, topics.drift_events, [_drift(model, datetime.now(UTC))])
    runs = _read_until(settings, topics.training_runs, model, _ended(TrainingRunRejected))
    rejected = next(e for e in runs if isinstance(e, TrainingRunRejected))
    assert any("'x'" in p and "'n/a'" in p and "wrong type" in p for p in rejected.problems), rejected
    assert stack.registry.get(f"/models/{model}").json()["latest_version"] == 0


def test_driftloop_train_asks_for_a_run_and_reports_its_outcome(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer
    from typer.testing import CliRunner

    from driftloop.cli.train import train

    settings = stack.settings
    model = f"manual-{uuid.uuid4().hex[:6]}"
    _register(stack, model, champion_flip=True)
    _write_labelled(settings, model, 600, datetime.now(UTC), seed=4, flip=False)
    monkeypatch.setenv("DRIFTLOOP_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("DRIFTLOOP_TOPIC_PREFIX", settings.topic_prefix)
    cli = typer.Typer()
    cli.command("train")(train)
    cli.command("unused")(lambda: None)  # two commands, so "train" is a sub-command as in driftloop
    result = CliRunner().invoke(cli, ["train", model, "--wait", "--timeout", str(DEADLINE_S)])
    assert result.exit_code == 0, result.output
    assert "version 2: accuracy" in result.output and "promoted to production" in result.output
    assert stack.registry.get(f"/models/{model}").json()["aliases"]["production"] == 2


def _send_raw(settings: Settings, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    """Records as any Kafka client may write them: any bytes, or no value at all."""

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(produce())


def test_poison_on_drift_events_is_dead_lettered_and_the_valid_trigger_still_trains(stack: Stack) -> None:
    settings, topics = stack.settings, topic_names(stack.settings.topic_prefix)
    model = f"poison-{uuid.uuid4().hex[:6]}"
    _register(stack, model, champion_flip=None)
    _write_labelled(settings, model, 600, datetime.now(UTC), seed=5, flip=False)
    garbage = b"\xff\xfe not json " + model.encode()
    future = _drift(model, datetime.now(UTC)).model_copy(
        update={"occurred_at": datetime(2400, 1, 1, tzinfo=UTC)}
    )
    wrong = RetrainModel(model_name=model, reason="manual")  # a command, but on the drift topic
    valid = _drift(model, datetime.now(UTC))
    poison = [garbage, encode(future), encode(wrong)]
    _send_raw(settings, topics.drift_events, [(model.encode(), p) for p in poison])
    _send_raw(settings, topics.drift_events, [(model.encode(), None), (model.encode(), encode(valid))])

    runs = _read_until(settings, topics.training_runs, model, _ended(TrainingRunFinished))
    started = [e for e in runs if isinstance(e, TrainingRunStarted)]
    assert len(started) == 1 and started[0].trigger_event_id == valid.event_id, runs

    letters = _read_until(settings, topics.dead_letter, model, lambda seen: len(seen) >= 2)
    letters += _read_until(settings, topics.dead_letter, "unknown", lambda seen: len(seen) >= 2)
    by_original = {e.original: e for e in letters if isinstance(e, EventDeadLettered)}
    assert by_original[garbage].reason == "invalid_event"
    assert by_original[encode(future)].reason == "too_far_in_future"
    assert by_original[encode(wrong)].reason == "wrong_topic"
    assert by_original[b""].reason == "empty_message"
    for original in (garbage, encode(future), encode(wrong), b""):
        letter = by_original[original]
        assert letter.source == f"topic:{topics.drift_events}" and letter.source_offset is not None

    health = httpx.get(f"{stack.trainer_web}/health").json()
    assert health["status"] == "ok", health
    metrics = httpx.get(f"{stack.trainer_web}/metrics").text
    assert (
        f'driftloop_trainer_dead_letters_total{{reason="invalid_event",topic="{topics.drift_events}"}}'
        in (metrics)
    )


def _health_until(
    url: str, process: ManagedProcess, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline, last = time.monotonic() + DEADLINE_S, {}
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, f"the trainer exited; see {process.log_path}"
        with contextlib.suppress(httpx.HTTPError):
            last = httpx.get(url, timeout=5).json()
            if done(last):
                return last
        time.sleep(0.3)
    raise AssertionError(f"/health never got there: {last}; see {process.log_path}")


def test_the_trainer_waits_for_clickhouse_says_degraded_and_resumes_by_itself(
    kafka: Any, tmp_path: Path
) -> None:
    host, ch_port, web_port = "127.0.0.1", free_port(), free_port()
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        clickhouse_url=f"http://{host}:{ch_port}",  # nothing listens there yet
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}-",
        data_dir=tmp_path,
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(kafka.bootstrap, [topics.drift_events, topics.training_runs, topics.dead_letter], 1, 1)
    env = {
        **settings_env(settings),
        "DRIFTLOOP_TRAINER_WEB_PORT": str(web_port),
        "DRIFTLOOP_LOG_LEVEL": "INFO",
    }
    trainer = spawn(
        "trainer", [sys.executable, "-m", "services.trainer"], tmp_path / "trainer.log", env=env, cwd=ROOT
    )
    clickhouse = None
    try:
        health_url = f"http://127.0.0.1:{web_port}/health"
        degraded = _health_until(health_url, trainer, lambda h: "clickhouse" in h.get("unavailable", {}))
        assert degraded["status"] == "degraded" and httpx.get(health_url).status_code == 503
        time.sleep(3)  # a few retries, still one log line about it
        clickhouse = start_clickhouse_server(host, ch_port, tmp_path / "ch", tmp_path / "clickhouse.log")
        healthy = _health_until(health_url, trainer, lambda h: h.get("status") == "ok")
        assert healthy["unavailable"] == {} and httpx.get(health_url).status_code == 200
        log = (tmp_path / "trainer.log").read_text()
        assert log.count("clickhouse is unavailable") == 1 and log.count("clickhouse is available again") == 1

        # and it is really consuming: garbage goes to dead-letter
        _send_raw(settings, topics.drift_events, [(b"k", b"{not json")])
        letters = _read_until(settings, topics.dead_letter, "unknown", lambda seen: len(seen) >= 1)
        assert isinstance(letters[0], EventDeadLettered) and letters[0].original == b"{not json"
    finally:
        trainer.stop()
        if clickhouse is not None:
            clickhouse.stop()


def test_the_trainer_waits_for_kafka_says_degraded_and_resumes_by_itself(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    host, port = kafka.bootstrap.rsplit(":", 1)
    bootstrap = Forwarder((host, int(port)))  # Kafka's bootstrap address, away until it is up
    web_port = free_port()
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{bootstrap.port}",
        clickhouse_url=clickhouse_server.url,
        clickhouse_database=f"t_{uuid.uuid4().hex[:8]}",
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}-",
        data_dir=tmp_path,
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(kafka.bootstrap, [topics.drift_events, topics.training_runs, topics.dead_letter], 1, 1)
    env = {
        **settings_env(settings),
        "DRIFTLOOP_TRAINER_WEB_PORT": str(web_port),
        "DRIFTLOOP_LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "trainer.log"
    trainer = spawn("trainer", [sys.executable, "-m", "services.trainer"], log_path, env=env, cwd=ROOT)
    try:
        health_url = f"http://127.0.0.1:{web_port}/health"
        degraded = _health_until(health_url, trainer, lambda h: "kafka" in h.get("unavailable", {}))
        assert degraded["status"] == "degraded"
        time.sleep(8)  # several retries: still one line of ours, a few of the Kafka client's
        bootstrap.up()
        _health_until(health_url, trainer, lambda h: h.get("status") == "ok")
        log = log_path.read_text()
        assert log.count("kafka is unavailable") == 1 and log.count("kafka is available again") == 1
        outage = log.split("kafka is available again")[0]
        assert sum("aiokafka" in line for line in outage.splitlines()) <= 3, outage

        _send_raw(Settings(kafka_bootstrap=kafka.bootstrap), topics.drift_events, [(b"k", b"\x00garbage")])
        letters = _read_until(
            Settings(kafka_bootstrap=kafka.bootstrap),
            topics.dead_letter,
            "unknown",
            lambda seen: len(seen) >= 1,
        )
        assert isinstance(letters[0], EventDeadLettered) and letters[0].original == b"\x00garbage"
    finally:
        trainer.stop()
        bootstrap.down()
