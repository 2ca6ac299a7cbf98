"""The SDK's disk spool and ordered buffer, without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.sdk.buffer import EventBuffer
from shared.sdk.spool import DiskSpool, Record, SpoolLockedError, open_free_spool


def _records(start: int, count: int) -> list[Record]:
    return [Record(0, b"m", f"{i}".encode()) for i in range(start, start + count)]


def _drain(buffer: EventBuffer, chunk: int = 7) -> list[bytes]:
    out: list[bytes] = []
    while True:
        records, position = buffer.take(chunk)
        if not records:
            return out
        out.extend(r.value for r in records)
        buffer.delivered_now(len(records))
        if position is not None:
            buffer.release(position, len(records))


def test_spool_keeps_order_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    spool.append(_records(0, 50))
    first, position = spool.peek(20)
    spool.advance(position, len(first))
    spool.close()

    reopened = DiskSpool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert len(reopened) == 30
    rest, position = reopened.peek(100)
    assert [r.value for r in first + rest] == [f"{i}".encode() for i in range(50)]
    reopened.advance(position, len(rest))
    assert len(reopened) == 0 and not list(tmp_path.glob("*.seg"))


def test_spool_refuses_what_does_not_fit(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=200)
    written, refused = spool.append(_records(0, 100))
    assert written > 0 and refused == 100 - written


def test_spool_skips_a_torn_tail(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path, max_bytes=1 << 20)
    spool.append(_records(0, 3))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[:-2])
    assert [r.value for r in DiskSpool(tmp_path, max_bytes=1 << 20).peek(10)[0]] == [b"0", b"1"]


def test_one_spool_folder_per_producer(tmp_path: Path) -> None:
    first = DiskSpool(tmp_path, max_bytes=100)
    with pytest.raises(SpoolLockedError):
        DiskSpool(tmp_path, max_bytes=100)
    first.close()
    DiskSpool(tmp_path, max_bytes=100).close()


def test_buffer_delivers_in_log_order_through_memory_and_disk(tmp_path: Path) -> None:
    buffer = EventBuffer(DiskSpool(tmp_path, max_bytes=1 << 20), max_memory_events=10)
    buffer.extend(_records(0, 5))
    in_flight, _ = buffer.take(3)  # taken from memory, e.g. waiting for a broker that went away
    buffer.extend(_records(5, 20))  # overflows memory: spilled to disk
    buffer.spill()
    buffer.append(_records(25, 1)[0])
    assert buffer.stats().spilled == 22
    buffer.give_back(in_flight)  # close: the unacknowledged chunk goes in front
    assert _drain(buffer) == [f"{i}".encode() for i in range(26)]
    assert buffer.pending == 0


def test_full_disk_drops_loudly_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buffer = EventBuffer(DiskSpool(tmp_path, max_bytes=100), max_memory_events=1)
    buffer.extend(_records(0, 50))
    stats = buffer.stats()
    assert stats.dropped > 0 and stats.dropped + stats.on_disk == 50
    assert "disk buffer" in caplog.text and "dropped" in caplog.text
    assert buffer.wait_resolved(stats.dropped, timeout=0)


def test_replicas_sharing_a_configuration_take_free_slots(tmp_path: Path) -> None:
    first = open_free_spool(tmp_path / "app", max_bytes=100, segment_bytes=100)
    second = open_free_spool(tmp_path / "app", max_bytes=100, segment_bytes=100)
    assert (first.folder.name, second.folder.name) == ("app", "app-1")
