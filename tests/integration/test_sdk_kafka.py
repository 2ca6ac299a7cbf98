"""The SDK on a real broker: every event arrives exactly once, also across a broker outage."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import msgspec
import pytest

from driftloop.infra.kafka import start_kafka
from shared.kafka.admin import create_topics
from shared.sdk import AsyncDriftloop, Driftloop, ProducerConfig
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import KafkaBroker, free_ports
from tests.integration.ingest_helpers import read_topic

pytestmark = pytest.mark.integration


def _config(bootstrap: str, prefix: str, spool: Path, **kw: object) -> ProducerConfig:
    return ProducerConfig.from_settings(
        Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, data_dir=spool), app_name="test", **kw
    )


def _client_lines(caplog: pytest.LogCaptureFixture, start: int = 0) -> list[str]:
    """What the SDK and its Kafka client logged (from record ``start`` on), as the app's log would show it."""
    return [
        f"{r.levelname}:{r.name}:{r.getMessage()}"
        for r in caplog.records[start:]
        if r.name.startswith(("aiokafka", "shared.sdk"))
    ]


def _ids(payloads: list[bytes]) -> list[str]:
    return [msgspec.json.decode(p)["prediction_id"] for p in payloads]


def test_100k_predictions_arrive_exactly_once(kafka: KafkaBroker, topic_prefix: str, tmp_path: Path) -> None:
    topics = topic_names(topic_prefix)
    create_topics(kafka.bootstrap, [topics.predictions_raw, topics.labels_raw], 3, 1)
    n = 100_000
    with Driftloop(_config(kafka.bootstrap, topic_prefix, tmp_path)) as dl:
        sent = [
            dl.log_prediction(f"model-{i % 7}", "1", {"x": i, "plan": "pro", "gap": None}, prediction=i % 2)
            for i in range(n)
        ]
        dl.log_label("model-0", sent[0], label=1)
        assert dl.flush(timeout=120)
        assert dl.stats().delivered == n + 1
    received = read_topic(kafka.bootstrap, topics.predictions_raw, expected=n)
    ids = _ids(received)
    assert len(ids) == n
    assert set(ids) == set(sent)
    assert len(read_topic(kafka.bootstrap, topics.labels_raw, expected=1)) == 1


def test_async_flavour_and_timed_decorator(kafka: KafkaBroker, topic_prefix: str, tmp_path: Path) -> None:
    topics = topic_names(topic_prefix)

    async def app() -> None:
        async with AsyncDriftloop(_config(kafka.bootstrap, topic_prefix, tmp_path)) as dl:

            @dl.timed("churn", "3")
            async def predict(features: dict[str, object]) -> tuple[int, dict[str, float]]:
                await asyncio.sleep(0)
                return 1, {"0": 0.2, "1": 0.8}

            assert await predict({"age": 40}) == (1, {"0": 0.2, "1": 0.8})
            assert await dl.flush(timeout=60)

    asyncio.run(app())
    [payload] = read_topic(kafka.bootstrap, topics.predictions_raw, expected=1)
    event = msgspec.json.decode(payload)
    assert event["features"] == {"age": 40}
    assert event["probabilities"] == {"0": 0.2, "1": 0.8}
    assert event["latency_ms"] >= 0


def test_broker_outage_buffers_to_disk_and_replays_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop a private broker mid-stream, keep logging, restart it: all events arrive, none twice.

    The outage is logged once (the client's first complaint and the SDK's own warning), not once per retry.
    """
    caplog.set_level(logging.INFO)
    host = "127.0.0.1"
    port, controller = free_ports(2, host)
    bootstrap = f"{host}:{port}"
    data, log_path = tmp_path / "broker", tmp_path / "broker.log"
    broker = start_kafka(host, port, controller, data, log_path, Settings())
    prefix = "outage-"
    topics = topic_names(prefix)
    create_topics(bootstrap, [topics.predictions_raw, topics.labels_raw], 3, 1)
    config = _config(
        bootstrap,
        prefix,
        tmp_path / "app",
        max_memory_events=5_000,
        request_timeout_ms=5_000,
        spill_after_s=0.5,
    )
    sent: list[str] = []
    worst_call_s = 0.0
    worst_by_phase: dict[str, float] = {}
    try:
        with Driftloop(config) as dl:

            def log_some(phase: str, count: int, pause_every: int = 500) -> None:
                nonlocal worst_call_s
                for i in range(count):
                    started = time.perf_counter()
                    sent.append(dl.log_prediction("churn", "1", {"i": len(sent)}, prediction=i % 2))
                    took = time.perf_counter() - started
                    worst_call_s = max(worst_call_s, took)
                    worst_by_phase[phase] = max(worst_by_phase.get(phase, 0.0), took)
                    if i % pause_every == 0:
                        time.sleep(0.005)  # a steady production stream, not one burst

            log_some("before", 5_000)
            first_outage_record = len(caplog.records)
            outage_started = time.monotonic()
            broker.stop()
            log_some("outage", 20_000)
            time.sleep(max(0.0, 5 - (time.monotonic() - outage_started)))  # several seconds of retries
            during_outage = _client_lines(caplog, first_outage_record)
            broker = start_kafka(host, port, controller, data, log_path, Settings())
            assert dl.stats().spilled > 0, (
                "events logged during the outage should have gone to the disk buffer"
            )
            assert "buffering events to" in caplog.text, "the outage should be reported"
            assert 1 <= len(during_outage) <= 2, "\n".join(during_outage)
            log_some("after restart", 5_000)
            assert dl.flush(timeout=180)
            final = dl.stats()
            assert any("reachable again" in line for line in _client_lines(caplog)), caplog.text
        print(
            f"\noutage: {len(sent)} events, spilled {final.spilled}, dropped {final.dropped}, "
            f"max log_prediction latency {worst_call_s * 1000:.2f} ms "
            f"({', '.join(f'{k}: {v * 1000:.2f} ms' for k, v in worst_by_phase.items())})"
        )
        received = _ids(read_topic(bootstrap, topics.predictions_raw, expected=len(sent)))
        assert final.dropped == 0
        assert set(received) == set(sent)
        assert len(received) == len(sent), f"{len(received) - len(set(received))} duplicates"
        assert received == sent, "one model's events are keyed to one partition and must keep their order"
    finally:
        broker.stop()


def test_events_kept_on_disk_at_close_are_sent_by_the_next_producer(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    """An app that stops while Kafka is unreachable loses nothing: the next start replays its disk buffer."""
    [dead_port] = free_ports(1)
    topics = topic_names(topic_prefix)
    create_topics(kafka.bootstrap, [topics.predictions_raw, topics.labels_raw], 3, 1)
    unreachable = _config(f"127.0.0.1:{dead_port}", topic_prefix, tmp_path, retry_backoff_s=0.1)
    with Driftloop(unreachable) as dl:
        sent = [dl.log_prediction("churn", "1", {"i": i}, prediction=0) for i in range(1000)]
        assert not dl.flush(timeout=0.5)
        dl.close(timeout=0.5)
        assert dl.stats().on_disk == 1000 and dl.stats().dropped == 0
    reachable = _config(kafka.bootstrap, topic_prefix, tmp_path)
    with Driftloop(reachable) as dl:
        assert dl.flush(timeout=60)
    assert _ids(read_topic(kafka.bootstrap, topics.predictions_raw, expected=1000)) == sent


def test_an_unreachable_broker_is_logged_once_not_once_per_retry(
    topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Several seconds of retries against an address nobody listens on: one or two lines, not one per retry."""
    caplog.set_level(logging.INFO)
    [dead_port] = free_ports(1)
    config = _config(f"127.0.0.1:{dead_port}", topic_prefix, tmp_path, retry_backoff_s=0.1)
    with Driftloop(config) as dl:
        for i in range(6):
            dl.log_prediction("churn", "1", {"i": i}, prediction=0)
            time.sleep(1.0)
        assert not dl.connected
        lines = _client_lines(caplog)
        assert 1 <= len(lines) <= 2, "\n".join(lines)
        assert any("unavailable" in line and str(dead_port) in line for line in lines)
        dl.close(timeout=0.5)
