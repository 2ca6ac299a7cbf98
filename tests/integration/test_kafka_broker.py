"""The local broker is a real Kafka: idempotent produce, ordered consume per key, idempotent topic creation."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka.admin import KafkaAdminError, broker_ready, create_topics
from tests.fixtures.kafka import KafkaBroker

pytestmark = pytest.mark.integration

KEYS = [f"key-{i}" for i in range(10)]


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, key=KEYS[i % len(KEYS)].encode(), value=str(i).encode())
            for i in range(count)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int) -> list[tuple[int, str, int]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    got: list[tuple[int, str, int]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for tp, records in batches.items():
                    got.extend(
                        (tp.partition, r.key.decode(), int(r.value)) for r in records if r.key and r.value
                    )
    finally:
        await consumer.stop()
    return got


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


def test_broker_answers_metadata(kafka: KafkaBroker) -> None:
    assert broker_ready(kafka.bootstrap)


def test_thousand_messages_round_trip_in_order_per_key(kafka: KafkaBroker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}orders"
    create_topics(kafka.bootstrap, [topic], partitions=3, replication=1)

    asyncio.run(_produce(kafka.bootstrap, topic, 1000))
    got = asyncio.run(_consume(kafka.bootstrap, topic, 1000))

    assert len(got) == 1000
    assert sorted(value for _, _, value in got) == list(range(1000))
    per_key: dict[str, list[int]] = defaultdict(list)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for partition, key, value in got:
        per_key[key].append(value)
        partitions_of_key[key].add(partition)
    for key, values in per_key.items():
        assert values == sorted(values), f"{key} arrived out of order"
        assert len(partitions_of_key[key]) == 1
    assert len({p for parts in partitions_of_key.values() for p in parts}) > 1, "keys should spread"


def test_create_topics_is_idempotent(kafka: KafkaBroker, topic_prefix: str) -> None:
    first, second = f"{topic_prefix}a", f"{topic_prefix}b"

    assert create_topics(kafka.bootstrap, [first], partitions=2, replication=1) == [first]
    assert create_topics(kafka.bootstrap, [first], partitions=2, replication=1) == []
    assert create_topics(kafka.bootstrap, [first, second], partitions=4, replication=1) == [second]

    counts = asyncio.run(_partition_counts(kafka.bootstrap, [first, second]))
    assert counts == {first: 2, second: 4}


def test_create_topics_reports_real_errors(kafka: KafkaBroker, topic_prefix: str) -> None:
    with pytest.raises(KafkaAdminError, match="replicat"):
        create_topics(kafka.bootstrap, [f"{topic_prefix}x"], partitions=1, replication=3)


def test_unknown_topics_are_auto_created(kafka: KafkaBroker, topic_prefix: str) -> None:
    """A producer's first message to a topic that does not exist yet creates it."""
    topic = f"{topic_prefix}auto"
    asyncio.run(_produce(kafka.bootstrap, topic, 10))
    assert len(asyncio.run(_consume(kafka.bootstrap, topic, 10))) == 10
