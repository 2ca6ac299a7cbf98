"""Registrations arriving together are written together, and each caller still gets its own answer."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.registry.adapters.group_commit import GroupCommit
from services.registry.errors import NotFound


class Writer:
    """Doubles each item; refuses the whole batch if it holds a negative one; the first batch waits for
    ``release`` so that the callers arriving meanwhile queue behind it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.started.set()
            assert self.release.wait(10)
        if any(i < 0 for i in items):
            raise NotFound(f"no model for {min(items)}")
        return [2 * i for i in items]


def _queue_behind_first(writer: Writer, group: GroupCommit[int, int], items: list[int]) -> list[object]:
    """Submit 0 alone, then ``items`` while 0's batch is held; everyone's outcome (result or error)."""

    def outcome(item: int) -> object:
        try:
            return group.submit(item)
        except NotFound as exc:
            return exc

    with ThreadPoolExecutor(len(items) + 1) as pool:
        first = pool.submit(outcome, 0)
        assert writer.started.wait(10)
        rest = [pool.submit(outcome, i) for i in items]
        while group.waiting() < len(items):  # every caller queued behind the first
            threading.Event().wait(0.001)
        writer.release.set()
        return [first.result(10), *(f.result(10) for f in rest)]


def test_callers_arriving_while_a_batch_is_written_share_the_next_one() -> None:
    writer = Writer()
    group = GroupCommit(writer)
    items = list(range(1, 9))

    outcomes = _queue_behind_first(writer, group, items)

    assert outcomes == [0, *(2 * i for i in items)]  # each caller gets its own item's result
    assert writer.batches[0] == [0]  # the lone first caller waited for nobody
    assert sorted(writer.batches[1]) == items and len(writer.batches) == 2  # the rest: one batch


def test_a_failing_write_fails_only_its_caller() -> None:
    writer = Writer()
    group = GroupCommit(writer)

    outcomes = _queue_behind_first(writer, group, [1, 2, -3, 4])

    assert outcomes[:3] == [0, 2, 4] and outcomes[4] == 8
    assert isinstance(outcomes[3], NotFound) and "-3" in str(outcomes[3])
    # the batch was refused whole, then each write was made alone
    assert sorted(writer.batches[1]) == [-3, 1, 2, 4]
    assert sorted(map(tuple, writer.batches[2:])) == [(-3,), (1,), (2,), (4,)]


def test_batches_are_capped_and_every_caller_is_answered() -> None:
    writer = Writer()
    group = GroupCommit(writer, max_batch=3)

    outcomes = _queue_behind_first(writer, group, list(range(1, 11)))

    assert outcomes == [2 * i for i in range(11)]
    assert max(len(b) for b in writer.batches) == 3
    assert sorted(i for b in writer.batches for i in b) == list(range(11))


def test_a_lone_caller_gets_the_error_of_its_own_write() -> None:
    writer = Writer()
    writer.release.set()
    group = GroupCommit(writer)
    assert group.submit(5) == 10
    with pytest.raises(NotFound):
        group.submit(-1)
    assert writer.batches == [[5], [-1]]
