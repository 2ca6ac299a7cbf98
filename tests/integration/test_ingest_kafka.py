"""Ingest on the real broker: HTTP writes durably or says 503, the stream validator splits raw topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from fastapi.testclient import TestClient

from services.ingest.bootstrap import bootstrap
from services.ingest.domain.schemas import StaticSchemaSource
from services.ingest.entrypoints.http import create_app
from services.ingest.entrypoints.stream import StreamValidator
from shared.events import DataQualityCounted, EventDeadLettered
from shared.kafka.admin import create_topics
from shared.sdk import Driftloop, ProducerConfig
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import KafkaBroker, free_ports
from tests.integration.ingest_helpers import read_topic
from tests.unit.ingest_fakes import API_KEY, schema_source

pytestmark = pytest.mark.integration
HEADERS = {"X-API-Key": API_KEY}


def _settings(bootstrap: str, prefix: str, **kw: Any) -> Settings:
    return Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, ingest_api_keys={API_KEY: "test"}, **kw)


def _prediction(i: int, **overrides: Any) -> dict[str, Any]:
    event = {
        "model_name": "churn",
        "model_version": "1",
        "prediction_id": f"p-{i}",
        "features": {"age": 30 + i % 50, "plan": "pro"},
        "prediction": i % 2,
    }
    event.update(overrides)
    return event


def test_http_batch_is_split_and_only_good_events_reach_kafka(kafka: KafkaBroker, topic_prefix: str) -> None:
    topics = topic_names(topic_prefix)
    create_topics(kafka.bootstrap, topics.all(), 3, 1)
    app = create_app(
        bootstrap(_settings(kafka.bootstrap, topic_prefix), schemas=schema_source()), run_validator=False
    )
    batch: list[Any] = [_prediction(i) for i in range(200)]
    batch[10]["features"] = {"age": "ten"}
    batch[20] = {"model_name": "churn", "prediction": 1}
    batch[30] = _prediction(30, model_name="ghost")
    with TestClient(app) as client:
        response = client.post("/v1/predictions/batch", json=batch, headers=HEADERS)
        label = client.post(
            "/v1/labels", json={"model_name": "churn", "prediction_id": "p-1", "label": 1}, headers=HEADERS
        )
        bad = client.post("/v1/predictions", content=b'{"model_name": "churn", NaN}', headers=HEADERS)
        metrics = client.get("/metrics").text
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], [e["index"] for e in body["errors"]]) == (197, [10, 20, 30])
    assert [e["reason"] for e in body["errors"]] == ["feature_type_error", "schema_error", "unknown_model"]
    assert label.status_code == 202 and bad.status_code == 422
    ids = [
        msgspec.json.decode(v)["prediction_id"]
        for v in read_topic(kafka.bootstrap, topics.predictions, expected=197)
    ]
    assert sorted(ids) == sorted(f"p-{i}" for i in range(200) if i not in (10, 20, 30))
    assert len(read_topic(kafka.bootstrap, topics.labels, expected=1)) == 1
    assert "driftloop_ingest_kafka_write_seconds_count" in metrics


def test_http_answers_503_when_kafka_is_unreachable(topic_prefix: str) -> None:
    [dead_port] = free_ports(1)
    settings = _settings(f"127.0.0.1:{dead_port}", topic_prefix, ingest_kafka_timeout_s=2.0)
    app = create_app(bootstrap(settings, schemas=schema_source()), run_validator=False)
    with TestClient(app) as client:
        response = client.post("/v1/predictions", json=_prediction(1), headers=HEADERS)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == str(settings.ingest_retry_after_s)


MALFORMED: dict[str, bytes] = {
    "invalid_json": b"\x89PNG\r\n not an event",
    "schema_error": json.dumps(_prediction(0, features=["age", 3])).encode(),
    "feature_type_error": json.dumps(_prediction(0, features={"age": "forty", "plan": "pro"})).encode(),
    "non_finite_number": json.dumps(_prediction(0, features={"age": float("nan"), "plan": "pro"})).encode(),
    "unknown_model": json.dumps(_prediction(0, model_name="ghost")).encode(),
    "too_far_in_future": json.dumps(_prediction(0, occurred_at="2400-01-01T00:00:00Z")).encode(),
    "too_old": json.dumps(_prediction(0, occurred_at="1970-01-01T00:00:00Z")).encode(),
    "empty_message": b"",
}


async def _produce_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:  # an empty value is sent as a tombstone (no value at all)
            await producer.send_and_wait(topic, value or None, key=b"churn")
    finally:
        await producer.stop()


def test_validator_forwards_sdk_events_and_dead_letters_malformed_ones(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    topics = topic_names(topic_prefix)
    create_topics(kafka.bootstrap, topics.all(), 3, 1)
    settings = _settings(kafka.bootstrap, topic_prefix)
    n_good = 1000
    config = ProducerConfig.from_settings(settings.model_copy(update={"data_dir": tmp_path}), app_name="v")
    with Driftloop(config) as dl:
        for i in range(n_good):
            dl.log_prediction("churn", "1", {"age": 200 if i % 10 == 0 else 30, "plan": "pro"}, prediction=1)
        dl.log_label("churn", "p-1", 1)
        assert dl.flush(timeout=60)
    asyncio.run(_produce_raw(kafka.bootstrap, topics.predictions_raw, list(MALFORMED.values())))

    async def run_validator() -> int:
        service = bootstrap(settings, schemas=schema_source())
        validator = StreamValidator(service)
        task = asyncio.create_task(validator.run())
        try:
            for _ in range(600):
                await asyncio.sleep(0.1)
                if validator.committed >= n_good + 1 + len(MALFORMED):
                    break
            return await service.publish_quality()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await service.close()

    assert asyncio.run(run_validator()) == 1
    valid = read_topic(kafka.bootstrap, topics.predictions, expected=n_good)
    assert len(valid) == n_good
    assert len(read_topic(kafka.bootstrap, topics.labels, expected=1)) == 1
    letters = [
        EventDeadLettered.model_validate_json(v)
        for v in read_topic(kafka.bootstrap, topics.dead_letter, expected=len(MALFORMED))
    ]
    assert {letter.reason: letter.original for letter in letters} == MALFORMED
    assert all(letter.source == f"topic:{topics.predictions_raw}" for letter in letters)
    [quality] = [
        DataQualityCounted.model_validate_json(v)
        for v in read_topic(kafka.bootstrap, topics.data_quality, expected=1)
    ]
    assert quality.model_name == "churn"
    assert quality.counts["age"]["out_of_range"] == n_good // 10
    assert quality.counts["age"]["type_error"] == 1  # the 'forty' event: dead-lettered and counted


def _murmur2_partition(key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_any_partitioner_on_the_raw_topic_meets_each_models_events_on_one_internal_partition(
    kafka: KafkaBroker, topic_prefix: str
) -> None:
    """A librdkafka app (consistent-random CRC32) or a keyless producer scatters a model over partitions."""
    topics = topic_names(topic_prefix)
    create_topics(kafka.bootstrap, topics.all(), 3, 1)
    settings = _settings(kafka.bootstrap, topic_prefix)
    models = [f"m{i}" for i in range(6)]
    events = [
        (models[i % 6], i % 3, json.dumps(_prediction(i, model_name=models[i % 6])).encode())
        for i in range(60)
    ]

    async def produce_scattered() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
        await producer.start()
        try:
            for _, partition, value in events:  # no key, and a partition chosen by the app
                await producer.send_and_wait(topics.predictions_raw, value, partition=partition)
        finally:
            await producer.stop()

    asyncio.run(produce_scattered())

    async def run_validator() -> None:
        service = bootstrap(settings, schemas=StaticSchemaSource(dict.fromkeys(models)))
        validator = StreamValidator(service)
        task = asyncio.create_task(validator.run())
        try:
            for _ in range(600):
                await asyncio.sleep(0.1)
                if validator.committed >= len(events):
                    break
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await service.close()

    asyncio.run(run_validator())
    placed = asyncio.run(_read_with_partitions(kafka.bootstrap, topics.predictions, len(events)))
    assert len(placed) == len(events)
    for partition, key, value in placed:
        model = msgspec.json.decode(value)["model_name"]
        assert key == model.encode()
        assert partition == _murmur2_partition(key, 3), f"{model} on partition {partition}"


async def _read_with_partitions(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[int, bytes, bytes]] = []
    try:
        for _ in range(300):
            batch = await consumer.getmany(timeout_ms=200)
            out += [(r.partition, r.key, r.value) for records in batch.values() for r in records]
            if len(out) >= expected:
                break
    finally:
        await consumer.stop()
    return out
