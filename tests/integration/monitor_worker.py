"""Run ``python -m services.monitor`` as a real worker process against the session's Kafka and ClickHouse."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from driftloop.bench.monitor import publish_events
from driftloop.process import ManagedProcess, free_port, spawn
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def monitor_settings(kafka: Any, clickhouse_server: Any, tmp_path: Path, **overrides: Any) -> Settings:
    """Isolated settings: own database, topic prefix and data dir; the registry points nowhere."""
    return Settings(
        kafka_bootstrap=kafka.bootstrap,
        clickhouse_url=clickhouse_server.url,
        clickhouse_database=f"t_{uuid.uuid4().hex[:8]}",
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}-",
        data_dir=tmp_path,
        registry_url=f"http://127.0.0.1:{free_port()}",
        **{"kafka_partitions": 2, **overrides},
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings for a child process, plus the checkout on its import path."""
    return {**settings.as_env(), "PYTHONPATH": str(ROOT)}


def start_monitor(
    settings: Settings, log_path: Path, profiles: Path | None = None, web_port: int | None = None
) -> ManagedProcess:
    argv = [sys.executable, "-m", "services.monitor", "--web-port", str(web_port or free_port())]
    if profiles is not None:
        argv += ["--profiles", str(profiles)]
    return spawn("monitor", argv, log_path, env=settings_env(settings), cwd=ROOT)


def produce(settings: Settings, topic: str, events: Iterable[Any]) -> int:
    """Publish events keyed by model name with acks=all; returns how many were acknowledged."""
    return asyncio.run(publish_events(settings.kafka_bootstrap, topic, events))


def wait_for(
    check: Callable[[], bool], timeout: float, what: str | Callable[[], str], log_path: Path | None = None
) -> None:
    """Poll ``check``; on timeout fail with ``what`` (a callable is evaluated then) and the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = log_path.read_text()[-4000:] if log_path and log_path.exists() else ""
    described = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {described}\n{tail}")


def produce_raw(settings: Settings, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> None:
    """Publish (key, value) byte pairs as they are: for payloads no event class would produce."""

    async def send() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for key, value in messages:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())
