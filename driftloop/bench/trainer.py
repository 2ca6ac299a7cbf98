"""Benchmark: from a drift event to a promoted, announced version, for a training window of ``rows`` rows.

Starts (or reuses) the local Kafka and ClickHouse, a registry and a trainer process; writes ``rows``
labelled predictions whose label has flipped since the champion was trained, sends one ``DriftDetected``
and times until ``model-events`` announces the new production version. Prints the run's cost record and
ends with one JSON line. Run with ``python -m driftloop.bench.trainer [ROWS]``.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pandas as pd

from services.trainer.domain.dataset import coerce_features
from services.trainer.domain.recipe import build_estimator, parse_recipe
from shared import wire
from shared.codec import decode_any, encode
from shared.events import AliasChanged, DriftDetected, DriftKind, TrainingRunFinished
from shared.feature_schema import FeatureSchema, FeatureSpec
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.clients import producer as kafka_producer
from shared.settings import Settings

FEATURES = 20
DEADLINE_S = 1800.0


def _schema() -> FeatureSchema:
    specs = [FeatureSpec(name=f"num_{i}", type="numeric") for i in range(FEATURES - 4)]
    specs += [FeatureSpec(name=f"cat_{i}", type="categorical") for i in range(4)]
    return FeatureSchema(features=specs)


def _world(n: int, seed: int, flip: bool) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {f"num_{i}": rng.normal(size=n).round(4) for i in range(FEATURES - 4)}
    cols |= {f"cat_{i}": rng.choice(["a", "b", "c", "d"], n) for i in range(4)}
    frame = pd.DataFrame(cols)
    score = frame["num_0"] + 0.5 * frame["num_1"] + 0.5 * (frame["cat_0"] == "a") + rng.normal(0, 0.3, n)
    return frame, ((score > 0) ^ flip).astype(int).to_numpy()


def _write_window(settings: Settings, model: str, rows: int, now: datetime) -> None:
    from shared.clickhouse import clickhouse_client

    frame, labels = _world(rows, seed=1, flip=True)
    records = frame.to_dict("records")
    client = clickhouse_client(settings)
    for start in range(0, rows, 10_000):
        predictions, truths = [], []
        for i in range(start, min(rows, start + 10_000)):
            at = now - timedelta(seconds=rows - i)
            pid = f"{model}-{i}"
            features: dict[str, wire.FeatureValue] = {
                str(k): (float(v) if str(k).startswith("num") else str(v)) for k, v in records[i].items()
            }
            prediction = wire.PredictionWire(
                model_name=model,
                model_version="1",
                prediction_id=pid,
                occurred_at=at,
                features=features,
                prediction=0,
            )
            label = wire.LabelWire(model_name=model, prediction_id=pid, occurred_at=at, label=int(labels[i]))
            predictions.append([wire.encode(prediction).decode()])
            truths.append([wire.encode(label).decode()])
        client.insert("predictions_intake", predictions, column_names=["line"])
        client.insert("labels_intake", truths, column_names=["line"])
    client.close()


def _register(http: httpx.Client, model: str, rows: int) -> None:
    schema = _schema()
    recipe = {"window": {"max_rows": rows}}
    http.post(
        "/models", json={"name": model, "feature_schema": schema.model_dump(), "training_recipe": recipe}
    ).raise_for_status()
    frame, labels = _world(5000, seed=2, flip=False)  # the champion learnt the world before the drift
    champion = build_estimator(parse_recipe(recipe), schema)
    champion.fit(coerce_features(frame, schema, schema.names)[schema.names], labels.astype(str))
    buffer = io.BytesIO()
    joblib.dump(champion, buffer)
    http.post(
        f"/models/{model}/versions/upload", files={"artifact": ("m.joblib", buffer.getvalue())}
    ).raise_for_status()
    http.put(f"/models/{model}/aliases/production", json={"version": 1}).raise_for_status()


async def _drift_to_promoted(settings: Settings, model: str) -> tuple[float, TrainingRunFinished]:

    from shared.topics import topic_names

    topics = topic_names(settings.topic_prefix)
    consumer = kafka_consumer(
        settings,
        topics.model_events,
        topics.training_runs,
        auto_offset_reset="earliest",
        group_id=f"bench-{uuid.uuid4().hex}",
        enable_auto_commit=True,
    )
    await consumer.start()
    producer = kafka_producer(settings, enable_idempotence=False)
    await producer.start()
    now = datetime.now(UTC)
    drift = DriftDetected(
        model_name=model,
        model_version="1",
        kinds=[DriftKind.PERFORMANCE],
        severity=0.5,
        window_start=now - timedelta(minutes=10),
        window_end=now,
        windows_considered=3,
        windows_drifted=3,
    )
    began = time.monotonic()
    await producer.send_and_wait(topics.drift_events, encode(drift), key=drift.key)
    await producer.stop()
    finished: TrainingRunFinished | None = None
    promoted_at: float | None = None
    try:
        while time.monotonic() - began < DEADLINE_S and (finished is None or promoted_at is None):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = decode_any(record.value or b"")
                    if event.model_name != model:
                        continue
                    if isinstance(event, TrainingRunFinished):
                        finished = event
                    if isinstance(event, AliasChanged) and event.alias == "production" and event.version != 1:
                        promoted_at = time.monotonic()
    finally:
        await consumer.stop()
    if finished is None or promoted_at is None:
        raise TimeoutError("no promoted version announced; see the trainer log")
    return promoted_at - began, finished


def _wait_for_log(path: Path, text: str) -> None:
    deadline = time.monotonic() + 120
    while text not in (path.read_text() if path.exists() else ""):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} never appeared in {path}")
        time.sleep(0.2)


def main(rows: int = 50_000) -> dict[str, Any]:
    from driftloop.bench.cleanup import clean_up
    from driftloop.infra.stack import Component, local_stack
    from driftloop.process import free_port, spawn
    from services.monitor.adapters.clickhouse.storage import schema as monitor_schema
    from shared.clickhouse import clickhouse_client
    from shared.kafka.admin import create_topics
    from shared.topics import topic_names

    base = Settings()
    tag = uuid.uuid4().hex[:8]
    model = f"bench-trainer-{tag}"
    with (
        local_stack(base, components=[Component.KAFKA, Component.CLICKHOUSE]),
        tempfile.TemporaryDirectory() as tmp,
    ):
        settings = base.model_copy(
            update={
                "topic_prefix": f"bench-{tag}-",
                "clickhouse_database": f"bench_{tag}",
                "data_dir": Path(tmp),
                "artifact_root": "",
                "registry_url": f"http://127.0.0.1:{free_port()}",
                "registry_database_url": "",
                "registry_allow_anonymous_writes": True,
                "registry_relay_interval": 0.1,
            }
        )
        topics = topic_names(settings.topic_prefix)
        create_topics(settings.kafka_bootstrap, topics.all(), settings.kafka_partitions, 1)
        client = clickhouse_client(settings)
        for statement in monitor_schema():
            client.command(statement)
        client.close()
        env = {**settings.as_env(), "DRIFTLOOP_TRAINER_DEBOUNCE_SECONDS": "0.2"}
        registry = spawn(
            "registry", [sys.executable, "-m", "services.registry"], Path(tmp) / "registry.log", env=env
        )
        trainer = spawn(
            "trainer", [sys.executable, "-m", "services.trainer"], Path(tmp) / "trainer.log", env=env
        )
        try:
            with httpx.Client(base_url=settings.registry_url, timeout=60) as http:
                deadline = time.monotonic() + 120
                while True:
                    try:
                        if http.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                print(f"writing {rows:,} labelled predictions ({FEATURES} features) ...")
                _write_window(settings, model, rows, datetime.now(UTC))
                _register(http, model, rows)
                _wait_for_log(trainer.log_path, "trainer consuming")  # start the clock on a ready trainer
                seconds, finished = asyncio.run(_drift_to_promoted(settings, model))
                version = http.get(f"/models/{model}/versions/{finished.model_version}").json()
        finally:
            trainer.stop()
            registry.stop()
            clean_up(settings)
    cost = version["params"]["cost"]
    print(f"cost record: {json.dumps(cost)}")
    print(
        f"drift → promoted and announced in {seconds:.1f}s; {finished.metric} {finished.challenger_score:.4f} "
        f"vs champion {finished.champion_score}"
    )
    figures = {
        "drift_to_promoted_s": round(seconds, 2),
        "run_wall_s": cost["wall_s"],
        "train_cpu_s": cost["cpu_s"],
        "peak_memory_mb": cost["peak_memory_mb"],
        "importance_s": cost["stages_s"].get("importance"),
        "rows": cost["rows"],
        "bytes_read": cost["bytes_read"],
        "artifact_bytes": sum(cost["artifact_bytes"].values()),
        "challenger_score": finished.challenger_score,
        "champion_score": finished.champion_score,
    }
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
