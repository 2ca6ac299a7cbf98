"""A monitor worker in a cluster reaches Kafka over TLS and SASL for every client, its topic check included."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from services.monitor.entrypoints import stream
from shared.dependencies import Dependencies
from shared.kafka.clients import connection
from shared.settings import Settings


class Reached(BaseException):
    """Stops the start-up at the topic check (the retry loop catches Exception, not this)."""


def test_the_topic_check_connects_with_the_clients_tls_and_sasl(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        kafka_bootstrap="driftloop-kafka-bootstrap:9093",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="monitor",
        kafka_sasl_password="s3cret",
    )
    seen: list[Any] = []

    async def create_topics(endpoint: Any, *args: Any) -> list[str]:
        seen.append(connection(endpoint))
        raise Reached

    monkeypatch.setattr(stream, "acreate_topics", create_topics)
    monitor = SimpleNamespace(
        publisher=None,
        metrics=None,
        dependencies=Dependencies(running=False),
        open=lambda: None,
        subscribed=["predictions"],
        topics=SimpleNamespace(drift_events="drift-events"),
    )
    loop = stream.MonitorLoop(settings, monitor, consumer=None)  # type: ignore[arg-type]
    with pytest.raises(Reached):
        asyncio.run(loop._prepare())
    (used,) = seen
    assert (used.security_protocol, used.sasl_username) == ("SASL_SSL", "monitor")
