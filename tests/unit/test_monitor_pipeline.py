"""The Kafka loop's pipeline: batch N+1 is stored while batch N advances, yet batches commit in order."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from services.monitor.adapters.prometheus import MonitorMetrics
from services.monitor.domain.batches import Batch, Stored
from services.monitor.entrypoints.stream import MonitorLoop
from shared.dependencies import Dependencies
from shared.settings import Settings

TP = TopicPartition("predictions", 0)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None = b"{}"


class FakePublisher:
    async def confirm(self) -> None:
        return None


@dataclass
class FakeMonitor:
    """Records the order of the stages; batch ``fail`` fails while advancing."""

    log: list[str] = field(default_factory=list)
    slow: float = 0.05
    fail: int | None = None
    consumer_lag: int = 0
    publisher: FakePublisher = field(default_factory=lambda: FakePublisher())
    metrics: MonitorMetrics = field(default_factory=MonitorMetrics)
    dependencies: Dependencies = field(default_factory=Dependencies)

    async def store(self, batch: Batch) -> Stored:
        n = batch.records["predictions"][0].offset
        self.log.append(f"store {n} begins")
        await asyncio.sleep(0.01)
        self.log.append(f"store {n} ends")
        return Stored([], batch.records["predictions"])

    async def advance(self, stored: Stored) -> None:
        n = stored.records[0].offset
        self.log.append(f"advance {n} begins")
        await asyncio.sleep(self.slow)
        if n == self.fail:
            raise RuntimeError("ClickHouse refused the checkpoint")
        self.log.append(f"advance {n} ends")


class FakeConsumer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(f"commit {offsets[TP]}")

    def highwater(self, tp: TopicPartition) -> int:
        return 100


def _batch(offset: int) -> tuple[dict[TopicPartition, list[Any]], Batch]:
    records = [Rec("predictions", 0, offset)]
    return {TP: records}, Batch({"predictions": records}, {})  # type: ignore[dict-item]


async def _run(monitor: FakeMonitor, batches: int) -> list[BaseException | None]:
    loop = MonitorLoop(Settings(), monitor, FakeConsumer(monitor.log))  # type: ignore[arg-type]
    tasks: list[asyncio.Task[None]] = []
    for n in range(batches):
        taken, decoded = _batch(n)
        tasks.append(asyncio.create_task(loop._handle(taken, decoded, tasks[-1] if tasks else None)))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def test_next_batch_is_stored_while_the_previous_one_advances_and_commits_stay_in_order() -> None:
    monitor = FakeMonitor()
    assert asyncio.run(_run(monitor, 3)) == [None, None, None]
    log = monitor.log
    assert log.index("store 1 ends") < log.index("advance 0 ends")  # overlapped
    assert log.index("advance 0 ends") < log.index("advance 1 begins")  # but advanced in order
    assert [e for e in log if e.startswith("commit")] == ["commit 1", "commit 2", "commit 3"]


def test_a_failed_batch_stops_every_later_commit() -> None:
    monitor = FakeMonitor(fail=1)
    results = asyncio.run(_run(monitor, 3))
    assert results[0] is None
    assert all(isinstance(r, RuntimeError) for r in results[1:])
    assert [e for e in monitor.log if e.startswith("commit")] == ["commit 1"]  # batch 0 only
    with pytest.raises(ValueError):
        monitor.log.index("advance 2 begins")


def test_clickhouse_waits_are_a_union_over_the_sinks() -> None:
    from services.monitor.adapters.clickhouse.waits import RequestClock

    ticks = iter([0.0, 3.0])  # inserts 0-2 and judging 1-3 overlap: 3 s waited, not 4 (read at 0 and 3)
    waits = RequestClock(lambda: next(ticks))
    waits.enter(), waits.enter(), waits.leave(), waits.leave()
    assert waits.waited_s() == 3.0


class Fetching:
    """A consumer with no records: each ``getmany`` waits 0.1 s; the sixth stops the loop."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self.stopping, self.calls = stopping, 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.1)
        self.calls += 1
        if self.calls >= 6:
            self.stopping.set()
        return {}


def test_waiting_for_records_is_idle_only_while_no_batch_is_in_hand() -> None:
    async def go() -> tuple[MonitorLoop, float]:
        stopping = asyncio.Event()
        monitor = FakeMonitor()
        monitor.clickhouse_waits = lambda: 0.0  # type: ignore[attr-defined]
        loop = MonitorLoop(Settings(), monitor, Fetching(stopping))  # type: ignore[arg-type]
        storing = asyncio.create_task(asyncio.sleep(0.25))  # a batch in hand, stored meanwhile
        storing.add_done_callback(loop._settled)
        loop.in_hand.append(storing)
        began = time.monotonic()
        loop.running_since = began
        await loop._take(stopping)
        return loop, time.monotonic() - began

    loop, elapsed = asyncio.run(go())
    assert 0.1 < loop.idle_s < elapsed - 0.2  # the first 0.25 s were work, though spent in getmany
    spent = loop.spent()
    assert spent["busy_s"] == pytest.approx(spent["running_s"] - loop.idle_s, abs=0.01)
    assert set(spent) == {"busy_s", "cpu_s", "clickhouse_wait_s", "running_s"}
