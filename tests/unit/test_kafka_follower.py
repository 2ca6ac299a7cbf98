"""The topic follower's pure parts: one report per outage, backoff that doubles and resets, resume positions."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import ConsumerRecord, TopicPartition

from shared.kafka.follower import Reachability, TopicFollower, error_text, next_positions, while_answering


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(partition: int, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", partition, offset, 0, 0, None, b"v", None, 0, 1, [])


def test_an_outage_is_reported_once_when_it_starts_and_once_when_it_ends() -> None:
    clock = Clock()
    state = Reachability(retry_s=1.0, max_retry_s=10.0, now=clock)
    assert state.reached() is None  # the first connection ends no outage
    assert state.connected
    connected_since = state.since

    clock.now = 5.0
    assert state.lost(KafkaConnectionError("refused")) is True
    assert [state.lost(OSError("refused")) for _ in range(20)] == [False] * 20
    assert not state.connected and state.since != connected_since
    assert state.last_error == "OSError: refused"

    clock.now = 12.5
    assert state.reached() == 7.5
    assert state.reached() is None
    assert state.last_error == "OSError: refused"  # kept after reconnecting, as /status shows it


def test_a_follower_that_never_connected_reports_its_first_failure() -> None:
    state = Reachability(retry_s=1.0, max_retry_s=10.0)
    assert state.lost(OSError("refused")) is True and state.lost(OSError("refused")) is False


def test_backoff_doubles_up_to_its_limit_and_resets_when_kafka_answers() -> None:
    state = Reachability(retry_s=1.0, max_retry_s=10.0)
    assert [state.backoff() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    state.reached()
    assert state.backoff() == 1.0


def test_positions_resume_one_past_the_last_record_of_each_partition() -> None:
    batch = {
        TopicPartition("t", 0): [record(0, 3), record(0, 4)],
        TopicPartition("t", 1): [record(1, 0)],
        TopicPartition("t", 2): [],
    }
    assert next_positions(batch) == {TopicPartition("t", 0): 5, TopicPartition("t", 1): 1}


def test_error_text_names_the_type_once() -> None:
    assert error_text(KafkaConnectionError("no broker")) == "KafkaConnectionError: no broker"
    assert error_text(TimeoutError()) == "TimeoutError: "


def test_a_new_follower_is_disconnected_and_not_positioned() -> None:
    follower = TopicFollower("127.0.0.1:1", ["t"], start="earliest")
    status = follower.status
    assert (status.connected, status.last_error) == (False, None)
    assert not follower.positioned.is_set() and not follower.stopping


class BrokerGone:
    """A consumer whose broker went away after assigning: position() never returns, metadata fails."""

    def __init__(self, answers: bool = False) -> None:
        self.answers = answers
        self.probes = 0

    async def position(self, tp: TopicPartition) -> int:
        await asyncio.Event().wait()  # what aiokafka does when no broker answers the offset request
        raise AssertionError("unreachable")

    async def topics(self) -> set[str]:
        self.probes += 1
        if not self.answers:
            raise KafkaConnectionError("Unable to get cluster metadata over all known brokers")
        return {"t"}


def test_a_wait_on_a_broker_that_went_away_ends_in_a_broker_error() -> None:
    consumer = BrokerGone()
    step = consumer.position(TopicPartition("t", 0))
    with pytest.raises(KafkaConnectionError):
        asyncio.run(while_answering(consumer, step, probe_s=0.01))
    assert consumer.probes == 1


def test_a_slow_step_goes_on_while_kafka_answers() -> None:
    consumer = BrokerGone(answers=True)

    async def slow() -> int:
        await asyncio.sleep(0.05)
        return 42

    assert asyncio.run(while_answering(consumer, slow(), probe_s=0.01)) == 42
    assert consumer.probes >= 2
