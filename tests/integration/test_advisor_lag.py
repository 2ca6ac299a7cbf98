"""The scaling advisor on a real broker and ClickHouse: it reads a group's real lag and, for a backlog that
grows, publishes a ScaleAdvised event and stores a scale_advice row."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from services.advisor.bootstrap import bootstrap
from shared import codec
from shared.events import ScaleAdvised
from shared.kafka.admin import consumer_lag, create_topics
from shared.kafka.clients import consumer, producer
from shared.settings import Settings
from shared.topics import monitor_group, topic_names
from tests.fixtures.clickhouse import ClickHouseServer, random_database
from tests.fixtures.kafka import KafkaBroker, free_ports
from tests.integration.ingest_helpers import read_topic

pytestmark = pytest.mark.integration
PARTITIONS = 6


def test_the_advisor_reads_real_lag_and_advises_on_a_growing_backlog(
    kafka: KafkaBroker, clickhouse_server: ClickHouseServer, topic_prefix: str
) -> None:
    topics = topic_names(topic_prefix)
    create_topics(kafka.bootstrap, [topics.predictions, topics.labels, topics.scale_advice], PARTITIONS, 1)
    group = monitor_group(topic_prefix)
    nobody = free_ports(1)[0]  # no monitor answers: capacity comes from what the group processes
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=topic_prefix,
        clickhouse_url=clickhouse_server.url,
        clickhouse_database=random_database(),
        advisor_monitor_urls=f"http://127.0.0.1:{nobody}/health",
    )
    clock = {"now": 1_000_000.0}

    async def scenario() -> tuple[list[ScaleAdvised], dict[str, object], list[int]]:
        send = producer(kafka.bootstrap)
        member = consumer(kafka.bootstrap, topics.predictions, topics.labels, group_id=group)
        await send.start()
        await member.start()
        advisor, loop, _ = bootstrap(settings, clock=lambda: clock["now"])
        await loop.open()
        given: list[ScaleAdvised] = []
        partitions = [TopicPartition(topics.predictions, p) for p in range(PARTITIONS)]
        try:
            await member.getmany(timeout_ms=3000)  # joins the group: one live member
            seen_members = []
            for _tick in range(10):
                # 5,000 events per (simulated) 5 s; the worker commits 60% of what arrived: lag grows 400/s
                futures = [
                    await send.send(topics.predictions, b"{}", key=f"m{i % 60}".encode())
                    for i in range(5_000)
                ]
                await asyncio.gather(*futures)
                ends = await member.end_offsets(partitions)
                await member.commit({tp: int(end * 0.6) for tp, end in ends.items()})
                given += await advisor.tick()
                seen_members.append(advisor.signals["monitor"]["workers"])  # type: ignore[index]
                clock["now"] += 5.0
            return given, advisor.status(), seen_members
        finally:
            await loop.close()
            await member.stop()
            await send.stop()

    given, status, members = asyncio.run(scenario())

    lag = consumer_lag(kafka.bootstrap, group, [topics.predictions])
    assert len(lag.partitions) == PARTITIONS and lag.end == 50_000
    assert all(p.committed == int(p.end * 0.6) for p in lag.partitions)
    assert lag.lag == sum(p.end - int(p.end * 0.6) for p in lag.partitions)
    assert members[-1] == 1

    assert given, f"no advice for a growing backlog; signals: {status['signals']}"
    first = given[0]
    assert first.model_name == "monitor" and first.kind == "scale_up"
    assert first.workers_now == 1 and first.workers_advised == 3 and first.partitions == PARTITIONS
    assert "run 3 workers (partitions allow 6)" in first.message
    published = [
        codec.decode(v, ScaleAdvised)
        for v in read_topic(kafka.bootstrap, topics.scale_advice, expected=len(given))
    ]
    assert [e.event_id for e in published] == [e.event_id for e in given]

    from shared.clickhouse import clickhouse_client

    client = clickhouse_client(settings)
    rows = client.query(
        "SELECT kind, workers_advised, message FROM scale_advice FINAL ORDER BY advised_at"
    ).result_rows
    assert rows[0] == ("scale_up", 3, first.message)
    clickhouse = status["signals"]["clickhouse"]  # type: ignore[index]
    assert clickhouse["free_bytes"] > 0
