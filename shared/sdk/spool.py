"""The SDK's local disk buffer: append-only segment files holding events the broker could not take yet.

A record is framed as ``[u32 length][u32 crc32][u8 stream][u16 key length][key][value]``; a torn
tail (crash mid-write) fails its length or CRC check and is skipped with a warning. Segments are read
oldest first and deleted once every record in them was delivered; a small ``cursor`` file remembers how
far into the oldest segment delivery got, so a restart replays only what was not acknowledged.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, NamedTuple

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")
_HEAD = struct.Struct("<BH")
_SEGMENT_BASE = 10**12  # segment numbers stay positive even after many prepends


class Record(NamedTuple):
    """One encoded event on its way to Kafka: which stream (predictions/labels), key and JSON value."""

    stream: int
    key: bytes
    value: bytes


class SpoolLockedError(RuntimeError):
    """Another process already buffers into this folder; give each producer its own ``spool_dir``."""


def frame(record: Record) -> bytes:
    body = _HEAD.pack(record.stream, len(record.key)) + record.key + record.value
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _segment_name(number: int) -> str:
    return f"{number:016d}.seg"


class DiskSpool:
    """Ordered, size-capped record storage in ``folder``; not thread-safe (the caller holds a lock)."""

    def __init__(self, folder: Path, *, max_bytes: int, segment_bytes: int = 16 * 1024 * 1024) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(folder / "lock", "a+b")  # noqa: SIM115 - held for the spool's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            raise SpoolLockedError(
                f"{folder} is in use by another producer; set a different spool_dir for this one"
            ) from exc
        self._segments: list[int] = sorted(int(p.stem) for p in folder.glob("*.seg"))
        self._sizes: dict[int, int] = {n: (folder / _segment_name(n)).stat().st_size for n in self._segments}
        self._writer: IO[bytes] | None = None
        self._writer_number: int | None = None
        self._read_number, self._read_offset = self._load_cursor()
        self._reader: IO[bytes] | None = None
        self.records = self._count_records()

    # ------------------------------------------------------------------ state

    @property
    def bytes_used(self) -> int:
        return sum(self._sizes.values())

    def __len__(self) -> int:
        return self.records

    def _load_cursor(self) -> tuple[int | None, int]:
        path = self.folder / "cursor"
        if not self._segments or not path.exists():
            return (self._segments[0] if self._segments else None), 0
        number_text, _, offset_text = path.read_text().partition(" ")
        number, offset = int(number_text), int(offset_text)
        if number not in self._sizes:
            return self._segments[0], 0
        # segments older than the cursor were delivered but not yet deleted
        for old in [n for n in self._segments if n < number]:
            self._delete(old)
        return number, offset

    def _save_cursor(self) -> None:
        tmp = self.folder / "cursor.tmp"
        tmp.write_text(f"{self._read_number} {self._read_offset}")
        os.replace(tmp, self.folder / "cursor")

    def _count_records(self) -> int:
        count = 0
        for number in self._segments:
            start = self._read_offset if number == self._read_number else 0
            with open(self.folder / _segment_name(number), "rb") as f:
                f.seek(start)
                count += sum(1 for _ in _iter_frames(f, number))
        return count

    # ------------------------------------------------------------------ writing

    def append(self, records: Iterable[Record]) -> tuple[int, int]:
        """Append in order; returns (written, refused) - refused records did not fit under ``max_bytes``."""
        used = self.bytes_used
        written = refused = 0
        chunks: list[bytes] = []
        pending = 0
        for record in records:
            data = frame(record)
            if used + len(data) > self.max_bytes:
                refused += 1
                continue
            used += len(data)
            pending += len(data)
            chunks.append(data)
            written += 1
            if pending >= 1 << 20:
                self._write(b"".join(chunks))
                chunks, pending = [], 0
        if chunks:
            self._write(b"".join(chunks))
        self.records += written
        return written, refused

    def _write(self, data: bytes) -> None:
        if (
            self._writer is None
            or self._writer_number is None
            or self._sizes[self._writer_number] >= self.segment_bytes
        ):
            self._roll()
        assert self._writer is not None and self._writer_number is not None
        self._writer.write(data)
        self._writer.flush()
        self._sizes[self._writer_number] += len(data)

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        number = (self._segments[-1] + 1) if self._segments else _SEGMENT_BASE
        self._open_writer(number)
        self._segments.append(number)
        if self._read_number is None:
            self._read_number, self._read_offset = number, 0

    def _open_writer(self, number: int) -> None:
        self._writer = open(self.folder / _segment_name(number), "ab")  # noqa: SIM115 - kept open
        self._writer_number = number
        self._sizes.setdefault(number, 0)

    def prepend(self, records: list[Record]) -> None:
        """Put records in front of everything stored (undelivered in-flight events at close); ignores the cap."""
        if not records:
            return
        number = (self._segments[0] - 1) if self._segments else _SEGMENT_BASE
        data = b"".join(frame(r) for r in records)
        (self.folder / _segment_name(number)).write_bytes(data)
        self._segments.insert(0, number)
        self._sizes[number] = len(data)
        self._close_reader()
        self._read_number, self._read_offset = number, 0
        self._save_cursor()
        self.records += len(records)

    # ------------------------------------------------------------------ reading

    def peek(self, max_records: int) -> tuple[list[Record], tuple[int, int]]:
        """Up to ``max_records`` oldest records and the position after them (pass it to :meth:`advance`)."""
        out: list[Record] = []
        number, offset = self._read_number, self._read_offset
        while number is not None and len(out) < max_records:
            if self._reader is None or self._reader.name != str(self.folder / _segment_name(number)):
                self._close_reader()
                self._reader = open(self.folder / _segment_name(number), "rb")  # noqa: SIM115
            self._reader.seek(offset)
            for record, end in _iter_frames_with_end(self._reader, number, offset):
                out.append(record)
                offset = end
                if len(out) >= max_records:
                    break
            if len(out) >= max_records:
                break
            if number == self._writer_number or number == self._segments[-1]:
                break  # newest segment: nothing after it yet
            # the segment is exhausted; move on to the next one
            index = self._segments.index(number)
            number, offset = self._segments[index + 1], 0
        return out, (number if number is not None else -1, offset)

    def advance(self, position: tuple[int, int], delivered: int) -> None:
        """Mark everything before ``position`` delivered: drop finished segments, persist the cursor."""
        number, offset = position
        for old in [n for n in self._segments if n < number]:
            self._delete(old)
        self._read_number, self._read_offset = number, offset
        self.records -= delivered
        if number == self._writer_number or number not in self._sizes:
            pass
        elif offset >= self._sizes[number] and number != self._segments[-1]:
            self._delete(number)
            self._read_number, self._read_offset = (self._segments[0], 0) if self._segments else (None, 0)
        if self.records == 0 and self._segments:
            self._reset()
        else:
            self._save_cursor()

    def _reset(self) -> None:
        """Everything was delivered: remove all segments so the folder does not grow across outages."""
        self._close_reader()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writer_number = None
        for number in list(self._segments):
            self._delete(number)
        self._read_number, self._read_offset = None, 0
        (self.folder / "cursor").unlink(missing_ok=True)

    def _delete(self, number: int) -> None:
        if self._reader is not None and self._reader.name == str(self.folder / _segment_name(number)):
            self._close_reader()
        if number == self._writer_number and self._writer is not None:
            self._writer.close()
            self._writer, self._writer_number = None, None
        (self.folder / _segment_name(number)).unlink(missing_ok=True)
        self._segments.remove(number)
        self._sizes.pop(number, None)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close(self) -> None:
        self._close_reader()
        if self._writer is not None:
            self._writer.flush()
            os.fsync(self._writer.fileno())
            self._writer.close()
            self._writer = None
        self._lock_file.close()


def _iter_frames_with_end(f: IO[bytes], number: int, offset: int) -> Iterable[tuple[Record, int]]:
    while True:
        head = f.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return
        length, crc = _FRAME.unpack(head)
        body = f.read(length)
        if len(body) < length or zlib.crc32(body) != crc:
            log.warning(
                "spool segment %s has a torn record at byte %d; skipping the rest of it", number, offset
            )
            return
        stream, key_len = _HEAD.unpack_from(body)
        key_end = _HEAD.size + key_len
        offset += _FRAME.size + length
        yield Record(stream, body[_HEAD.size : key_end], body[key_end:]), offset


def _iter_frames(f: IO[bytes], number: int) -> Iterable[Record]:
    for record, _ in _iter_frames_with_end(f, number, f.tell()):
        yield record


def open_free_spool(folder: Path, *, max_bytes: int, segment_bytes: int, slots: int = 64) -> DiskSpool:
    """The first unlocked spool among ``folder``, ``folder-1``, ``folder-2``, ...

    Several replicas of one app on one machine share a configuration; each takes a free slot, and
    whichever starts next on a slot replays what an earlier process left there.
    """
    for slot in range(slots):
        candidate = folder if slot == 0 else folder.with_name(f"{folder.name}-{slot}")
        try:
            return DiskSpool(candidate, max_bytes=max_bytes, segment_bytes=segment_bytes)
        except SpoolLockedError:
            continue
    raise SpoolLockedError(f"all {slots} spool slots next to {folder} are in use; set a different spool_dir")
