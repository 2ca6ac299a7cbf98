"""The scaling advisor: reads the signals, forecasts from their trend, and publishes advice when it changes.

Its ports are small protocols so tests drive it with fakes (``tests/unit/advisor_fakes.py``); ``tick`` is one
reading-and-deciding step, the loop in ``entrypoints/stream.py`` calls it every ``advisor_interval_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from services.advisor.domain.advice import (
    Advice,
    DiskReading,
    DrainCeiling,
    GroupReading,
    Hysteresis,
    Policy,
    WorkerReading,
    advise_disk,
    advise_workers,
    capacity_per_worker,
    forecast,
    median_capacity,
    saturated_rate_per_worker,
    spent_s,
)
from services.advisor.domain.http import HttpRates, HttpReading, combined, rates
from shared.dependencies import Dependencies
from shared.events import ScaleAdvised
from shared.kafka.admin import GroupLag


class LagSource(Protocol):
    async def read(self, group: str, topics: Sequence[str] | None = None) -> GroupLag: ...


class WorkerSource(Protocol):
    async def read(self) -> list[WorkerReading]: ...


class HttpSource(Protocol):
    @property
    def names(self) -> Sequence[str]:
        """The services it reads, so that one that does not answer can be named."""
        ...

    async def read(self) -> list[HttpReading]: ...


class StorageSource(Protocol):
    def read(self) -> tuple[DiskReading, dict[str, dict[str, int]]] | None:
        """Bytes per table and free bytes, plus per table ``{"parts": n, "rows": n, "bytes": n}``."""
        ...


class AdvicePublisher(Protocol):
    async def publish(self, event: ScaleAdvised) -> None: ...


class AdviceSink(Protocol):
    def write(self, events: Sequence[ScaleAdvised]) -> None: ...


@dataclass(frozen=True)
class WatchedGroup:
    """A consumer group whose workers the advisor sizes: ``target`` names the service in the advice."""

    target: str
    group: str
    topics: tuple[str, ...]


DISK_EVERY_S = 30.0  # ClickHouse grows slowly: a reading every 30 s over two hours is plenty
DISK_READINGS = 240
CAPACITY_ESTIMATES = 12


def as_event(advice: Advice) -> ScaleAdvised:
    return ScaleAdvised(
        model_name=advice.target,
        kind=advice.kind,
        message=advice.message,
        workers_now=advice.workers_now,
        workers_advised=advice.workers_advised,
        partitions=advice.partitions,
        inflow_per_s=advice.inflow_per_s,
        capacity_per_worker=advice.capacity_per_worker,
        lag=advice.lag,
        lag_growth_per_s=advice.lag_growth_per_s,
        breach_in_s=advice.breach_in_s,
        days_until_full=advice.days_until_full,
    )


class Advisor:
    """Keeps the recent readings of each watched group and of ClickHouse, and turns them into advice."""

    def __init__(
        self,
        *,
        groups: Sequence[WatchedGroup],
        lag: LagSource,
        workers: WorkerSource,
        storage: StorageSource,
        publisher: AdvicePublisher,
        sink: AdviceSink,
        policy: Policy,
        dependencies: Dependencies | None = None,
        clock: Callable[[], float] = time.time,
        http: HttpSource | None = None,
    ) -> None:
        self.groups = list(groups)
        self.lag, self.workers, self.storage, self.http = lag, workers, storage, http
        self._http_before: dict[tuple[str, str], HttpReading] = {}
        self.http_names: list[str] = list(http.names) if http is not None else []
        self.publisher, self.sink = publisher, sink
        self.policy = policy
        self.dependencies = dependencies or Dependencies()
        self.clock = clock
        keep = int(policy.window_s) + 2  # at least one reading a second is never needed
        self.history: dict[str, deque[GroupReading]] = {g.target: deque(maxlen=keep) for g in self.groups}
        self.capacities: deque[float] = deque(maxlen=CAPACITY_ESTIMATES)
        self.ceilings: dict[str, DrainCeiling] = {g.target: DrainCeiling() for g in self.groups}
        self.disk: deque[DiskReading] = deque(maxlen=DISK_READINGS)
        self.hysteresis = Hysteresis()
        self.current: dict[str, ScaleAdvised] = {}
        self.signals: dict[str, Any] = {}
        self._workers_before: list[WorkerReading] = []
        self._read_at = 0.0

    async def tick(self) -> list[ScaleAdvised]:
        """Read every signal once, decide, and publish and store the advice that changed."""
        now = self.clock()
        advice: list[tuple[str, Advice | None]] = []
        await self._read_capacity()
        await self._read_http()
        busy_capacity = median_capacity(self.capacities)
        for group in self.groups:
            group_lag = await self.lag.read(group.group, group.topics or None)
            self._remember(group, group_lag, now)
            history = self.history[group.target]
            capacity = self._capacity(group.target, busy_capacity)
            drained = self.signals[group.target]["capacity_per_worker_drained"] is not None
            f = forecast(list(history), capacity, self.policy, drained=drained)
            if f is not None:
                self.signals[group.target].update(
                    inflow_per_s=round(f.inflow, 1),
                    inflow_ramp_per_s2=round(f.inflow_ramp, 1),
                    processed_per_s=round(f.processed, 1),
                    lag_trend=round(f.lag, 1),
                    lag_growth_per_s=round(f.lag_growth, 1),
                    lag_budget=round(f.lag_budget, 1),
                    breach_in_s=None if f.breach_in_s is None else round(f.breach_in_s, 1),
                    # capped by the processed rate while the lag grows (below the busy-time estimate)
                    capacity_per_worker=None if f.capacity is None else round(f.capacity, 1),
                    capacity_capped=f.capacity_capped,
                )
            advice.append((group.target, advise_workers(group.target, f, self.policy) if f else None))
        if not self.disk or now - self.disk[-1].at >= DISK_EVERY_S:
            stored = await asyncio.to_thread(self.storage.read)
            if stored is not None:
                reading, tables = stored
                self.disk.append(DiskReading(now, reading.table_bytes, reading.free_bytes))
                self.signals["clickhouse"] = {"free_bytes": reading.free_bytes, "tables": tables}
            advice.append(("clickhouse", advise_disk(list(self.disk), self.policy)))
        admitted = []
        for target, given in advice:
            if given is None:
                self.hysteresis.admit(None, now, target)
                if not self.hysteresis.holds(target):  # shown as long as it stands, as a quiet tick may end
                    self.current.pop(target, None)
            elif self.hysteresis.admit(given, now):
                event = as_event(given)
                self.current[target] = event
                admitted.append(event)
        if admitted:
            await asyncio.to_thread(self.sink.write, admitted)
            for event in admitted:
                await self.publisher.publish(event)
        return admitted

    def _remember(self, group: WatchedGroup, lag: GroupLag, now: float) -> None:
        per_topic: dict[str, int] = {}
        for p in lag.partitions:
            per_topic[p.topic] = per_topic.get(p.topic, 0) + 1
        # one consumer per partition of each topic: the widest topic caps the useful workers
        partitions = max(per_topic.values(), default=0)
        self.history[group.target].append(GroupReading(now, lag.end, lag.committed, partitions, lag.members))
        self.signals[group.target] = {
            "group": group.group,
            "workers": lag.members,
            "partitions": partitions,
            "lag": lag.lag,
            "lag_by_partition": {f"{p.topic}-{p.partition}": p.lag for p in lag.partitions},
            "busy_fraction": self.signals.get("busy_fraction"),
        }

    def _capacity(self, target: str, busy_capacity: float | None) -> float | None:
        """One worker's capacity: the busy-time estimate, at most what a worker was seen to drain."""
        history, ceiling = self.history[target], self.ceilings[target]
        if len(history) >= 2:
            seen = saturated_rate_per_worker(history[-2], history[-1])
            if seen is not None:
                ceiling.add(history[-1].at, seen)
        drained = ceiling.value(history[-1].at)
        self.signals[target]["capacity_per_worker_busy_time"] = busy_capacity
        self.signals[target]["capacity_per_worker_drained"] = None if drained is None else round(drained, 1)
        if drained is None:
            capacity = busy_capacity
        else:
            capacity = drained if busy_capacity is None else min(busy_capacity, drained)
        self.signals[target]["capacity_per_worker"] = capacity
        return capacity

    async def _read_http(self) -> None:
        """Request rate, 5xx rate and p99 latency of each HTTP service since the last tick."""
        if self.http is None:
            return
        try:
            now = await self.http.read()
        except Exception as exc:  # a signal, not a reason to stop advising on the rest
            self.signals["http_error"] = str(exc) or type(exc).__name__
            return
        by_service: dict[str, list[HttpRates]] = {}
        for reading in now:
            key = (reading.service, reading.instance)
            before = self._http_before.get(key)
            measured = rates(before, reading) if before is not None else None
            if measured is not None:
                by_service.setdefault(reading.service, []).append(measured)
            self._http_before[key] = reading
        self.signals["http"] = {
            service: {
                "requests_per_s": round(total.requests_per_s, 1),
                "errors_per_s": round(total.errors_per_s, 2),
                "p99_ms": total.p99_ms,
                "replicas": len(measured),
            }
            for service, measured in sorted(by_service.items())
            for total in [combined(measured)]
        }
        read = {r.service for r in now}
        for gone in sorted(set(self.http_names) - read):
            self.signals["http"][gone] = {"unreachable": True}

    async def _read_capacity(self) -> None:
        try:
            now = await self.workers.read()
        except Exception as exc:  # a worker's /health away: capacity from the others, or from the lag
            self.signals["workers_error"] = str(exc) or type(exc).__name__
            return
        at = self.clock()
        estimate = capacity_per_worker(self._workers_before, now)
        if estimate is not None:
            self.capacities.append(estimate)
        if self._workers_before and now and at > self._read_at:
            then = {w.worker: spent_s(w) for w in self._workers_before}
            busy = sum(max(0.0, spent_s(w) - then.get(w.worker, spent_s(w))) for w in now)
            self.signals["busy_fraction"] = round(busy / ((at - self._read_at) * len(now)), 3)
        self._workers_before, self._read_at = now, at

    def status(self) -> dict[str, Any]:
        """The current advice (one per target, cleared when its forecast clears) and the latest signals."""
        return {
            "advice": [e.model_dump(mode="json") for e in self.current.values()],
            "signals": self.signals,
        }
