"""The Kafka client's repeated complaints are held back only on a registered thread, only while Kafka is away."""

from __future__ import annotations

import logging
import threading

import pytest

from shared.kafka.logs import gate_this_thread, release


def test_first_complaint_shows_repeats_are_counted_and_other_threads_are_untouched(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = logging.getLogger("aiokafka")
    caplog.set_level(logging.INFO)
    held: list[int] = []

    def owner() -> None:
        gate = gate_this_thread()
        try:
            client.info("connected")  # info while Kafka works: shown, the gate stays open
            for _ in range(5):
                client.error("Unable connect to node")  # the first shows, the rest repeat it
            client.critical("a critical record always shows")
            held.append(gate.open())
            client.error("after Kafka answered again")  # shows: the gate is open again
        finally:
            release(gate)

    thread = threading.Thread(target=owner)
    thread.start()
    thread.join()
    client.error("the app's own client on another thread")
    messages = [r.getMessage() for r in caplog.records if r.name == "aiokafka"]
    assert messages == [
        "connected",
        "Unable connect to node",
        "a critical record always shows",
        "after Kafka answered again",
        "the app's own client on another thread",
    ]
    assert held == [4]


def test_a_gate_the_owner_closed_holds_back_even_the_first_complaint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    gate = gate_this_thread()
    try:
        gate.close()
        logging.getLogger("aiokafka.conn").error("Unable connect")
        logging.getLogger("aiokafka.consumer.subscription_state").info("Updating subscribed topics")
        logging.getLogger("shared.sdk").warning("ours: Kafka unreachable")  # not the client's: never held
        assert gate.open() == 2
    finally:
        release(gate)
    assert [r.getMessage() for r in caplog.records] == ["ours: Kafka unreachable"]
