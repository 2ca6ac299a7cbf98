"""The trainer's own health: outage logging stays a few lines, /health says what is away."""

from __future__ import annotations

import logging

from shared.dependencies import Dependencies
from shared.kafka.logs import RepeatFilter


def test_a_kafka_client_repeating_itself_is_one_line_per_window() -> None:
    quiet = RepeatFilter(window_s=300)

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, ("127.0.0.1:9092",), None)

    passed = [quiet.filter(record("aiokafka.conn", "Unable connect to %r")) for _ in range(400)]
    assert passed.count(True) == 1
    assert quiet.filter(record("aiokafka.conn", "another problem %r"))
    assert all(quiet.filter(record("services.trainer", "Unable connect to %r")) for _ in range(3))
    quiet.window_s = 0  # the window is over: the next one says how many were held back
    kept = record("aiokafka.conn", "Unable connect to %r")
    assert quiet.filter(kept) and "399 more like it" in kept.getMessage()


def test_health_says_starting_ok_or_degraded_with_the_reason() -> None:
    dependencies = Dependencies(running=False)
    assert dependencies.status() == {"status": "starting", "unavailable": {}}
    dependencies.running = True
    assert dependencies.status()["status"] == "ok"
    dependencies.away("clickhouse", "Connection refused")
    assert dependencies.status() == {
        "status": "degraded",
        "unavailable": {"clickhouse": "Connection refused"},
    }
    dependencies.back("clickhouse")
    assert dependencies.status()["status"] == "ok"
