"""Helpers for the ingest and SDK integration tests (no tests here): read a topic with a deadline."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer


async def _read(bootstrap: str, topic: str, expected: int, deadline_s: float, settle_s: float) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + deadline_s
        settle_until: float | None = None
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for records in batches.values():
                values.extend(r.value for r in records if r.value is not None)
            if len(values) >= expected:
                # keep reading briefly so duplicates would show up too
                settle_until = settle_until or time.monotonic() + settle_s
                if time.monotonic() >= settle_until:
                    break
    finally:
        await consumer.stop()
    return values


def read_topic(
    bootstrap: str, topic: str, *, expected: int, deadline_s: float = 120.0, settle_s: float = 1.5
) -> list[bytes]:
    """Every value in ``topic`` once ``expected`` arrived (or at the deadline)."""
    return asyncio.run(_read(bootstrap, topic, expected, deadline_s, settle_s))
