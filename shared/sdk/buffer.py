"""The SDK's ordered event buffer: bounded memory in front of the disk spool, safe to use from any thread.

Order is ``in-flight chunk < disk < memory``: the shipper always takes from disk before memory, and a
spill moves the oldest memory records to the end of the disk spool, so events reach Kafka in the order
the app logged them. The app's thread only ever appends to memory (or, when memory is full, spills it
to local disk itself): it never waits on the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from shared.sdk.spool import DiskSpool, Record

log = logging.getLogger("shared.sdk")


@dataclass(frozen=True)
class BufferStats:
    """Counters an app can export: what was logged, delivered, spilled to disk and (loudly) dropped."""

    logged: int
    delivered: int
    dropped: int
    spilled: int
    in_memory: int
    on_disk: int
    disk_bytes: int


class EventBuffer:
    """Bounded memory deque plus a :class:`DiskSpool`; every method is thread-safe."""

    def __init__(self, spool: DiskSpool, *, max_memory_events: int) -> None:
        if max_memory_events < 1:
            raise ValueError("max_memory_events must be at least 1")
        self.spool = spool
        self.max_memory_events = max_memory_events
        self._memory: deque[Record] = deque()
        self._mem_lock = threading.Lock()
        self._disk_lock = threading.Lock()
        self.logged = len(spool)  # events left on disk by an earlier run count as logged, not yet delivered
        self.delivered = 0
        self.dropped = 0
        self.spilled = 0
        self._last_drop_warning = 0.0
        self._progress = threading.Condition()

    # ------------------------------------------------------------------ app side

    def append(self, record: Record) -> None:
        """Queue one event; spills memory to disk when it is full rather than block or drop."""
        with self._mem_lock:
            self.logged += 1
            if len(self._memory) < self.max_memory_events:
                self._memory.append(record)
                return
        self.spill(extra=[record])

    def extend(self, records: list[Record]) -> None:
        with self._mem_lock:
            self.logged += len(records)
            if len(self._memory) + len(records) <= self.max_memory_events:
                self._memory.extend(records)
                return
        self.spill(extra=records)

    # ------------------------------------------------------------------ shipper side

    @property
    def memory_size(self) -> int:
        return len(self._memory)

    @property
    def pending(self) -> int:
        """Events logged but neither delivered nor dropped (memory, disk and in flight)."""
        return self.logged - self.delivered - self.dropped

    def spill(self, extra: list[Record] | None = None) -> None:
        """Move every event in memory (then ``extra``) to the end of the disk spool, keeping order."""
        with self._disk_lock:
            with self._mem_lock:
                moving = list(self._memory)
                self._memory.clear()
            moving.extend(extra or ())
            if not moving:
                return
            written, refused = self.spool.append(moving)
            self.spilled += written
        if refused:
            self._record_drops(refused)

    def take(self, max_records: int) -> tuple[list[Record], tuple[int, int] | None]:
        """The oldest events (disk first) and, for disk ones, the spool position to pass to :meth:`release`."""
        with self._disk_lock:
            if len(self.spool):
                records, position = self.spool.peek(max_records)
                if records:
                    return records, position
            with self._mem_lock:
                n = min(max_records, len(self._memory))
                return [self._memory.popleft() for _ in range(n)], None

    def delivered_now(self, count: int) -> None:
        """``count`` events were acknowledged by Kafka."""
        with self._progress:
            self.delivered += count
            self._progress.notify_all()

    def release(self, position: tuple[int, int], records: int) -> None:
        """A chunk taken from disk is settled: move the spool's read position past its ``records``."""
        with self._disk_lock:
            self.spool.advance(position, records)

    def give_back(self, records: list[Record]) -> None:
        """Undelivered in-flight events go in front of everything on disk (used at close)."""
        with self._disk_lock:
            self.spool.prepend(records)

    def _record_drops(self, count: int) -> None:
        with self._progress:
            self.dropped += count
            self._progress.notify_all()
        now = time.monotonic()
        if now - self._last_drop_warning > 5.0 or self.dropped == count:
            self._last_drop_warning = now
            log.warning(
                "Driftloop SDK: disk buffer %s is full (%d bytes); %d events dropped so far. "
                "Kafka has been unreachable too long: fix the broker connection or raise max_disk_bytes.",
                self.spool.folder,
                self.spool.max_bytes,
                self.dropped,
            )

    def wait_resolved(self, target: int, timeout: float | None) -> bool:
        """Block until ``target`` events (counted from the start) were delivered or dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._progress:
            while self.delivered + self.dropped < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._progress.wait(remaining if remaining is not None else 1.0)
        return True

    def stats(self) -> BufferStats:
        return BufferStats(
            logged=self.logged,
            delivered=self.delivered,
            dropped=self.dropped,
            spilled=self.spilled,
            in_memory=len(self._memory),
            on_disk=len(self.spool),
            disk_bytes=self.spool.bytes_used,
        )
