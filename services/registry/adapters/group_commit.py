"""Writes that arrive together are committed together: one transaction for all, not one each.

A registration's own SQL is a few statements, but its transaction (begin, SQLite's single writer lock,
commit) costs as much again, and concurrent callers wait for the writer lock one by one anyway. Here the
first caller to find no batch being written becomes the leader: it takes every write queued so far and
hands them to ``write`` as one batch; callers arriving meanwhile queue for the next batch. A lone caller
waits for nobody (no timer, no added latency).

A batch that fails is written again one write at a time, each in its own transaction, so every caller gets
its own answer or its own error, exactly as without grouping (an unknown model in one registration does
not fail its neighbours). Nothing of a failed batch is kept: ``write`` runs in one transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Slot(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Submit items from any number of threads; ``write(items)`` gives their results in order, or raises."""

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]], max_batch: int = 64) -> None:
        self._write = write
        self._max_batch = max_batch
        self._queue: list[_Slot[T, R]] = []
        self._writing = False
        self._changed = threading.Condition()

    def submit(self, item: T) -> R:
        """``item``'s result once it is committed (with whichever items were queued beside it)."""
        slot: _Slot[T, R] = _Slot(item)
        with self._changed:
            self._queue.append(slot)
        while True:
            with self._changed:
                while self._writing and not slot.done:
                    self._changed.wait()
                if slot.done:
                    return _outcome(slot)
                # nobody is writing and ours is still queued: lead the next batch (ours, unless more than
                # max_batch were queued before it: then the loop leads or joins a later one)
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                self._writing = True
            try:
                self._commit(batch)
            finally:
                with self._changed:
                    self._writing = False
                    self._changed.notify_all()

    def waiting(self) -> int:
        """How many writes are queued for the next batch."""
        with self._changed:
            return len(self._queue)

    def _commit(self, batch: list[_Slot[T, R]]) -> None:
        """Write ``batch`` whole; if that fails, each item alone, so each slot gets its own outcome."""
        try:
            self._write_whole_or_one_by_one(batch)
        finally:  # whatever happened, no caller may wait for ever for an answer that cannot come
            for slot in batch:
                if not slot.done:
                    slot.error = RuntimeError("the batch holding this write ended without its answer")
                    slot.done = True

    def _write_whole_or_one_by_one(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = self._write([s.item for s in batch])
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            for slot in batch:
                try:
                    slot.result = self._write([slot.item])[0]
                except BaseException as single:
                    slot.error = single
                slot.done = True
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result, slot.done = result, True


def _outcome(slot: _Slot[T, R]) -> R:
    if slot.error is not None:
        raise slot.error
    return slot.result  # type: ignore[return-value]
