"""Registry changes reach Kafka model-events through the outbox, in order, even across a crash."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi.testclient import TestClient

from driftloop.process import free_port
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from shared.codec import decode_any
from shared.events import AliasAction, AliasChanged, Event, ModelCreated, ModelVersionRegistered
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import KafkaBroker

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w-token"}
TOKENS_JSON = '{"w-token": "wes:writer"}'
DEADLINE_S = 60.0


def read_model_events(
    bootstrap: str, topic: str, done: Callable[[list[tuple[bytes, Event]]], bool]
) -> list[tuple[bytes, Event]]:
    """(key, event) pairs from the start of ``topic`` until ``done`` says so or the deadline passes."""

    async def consume() -> list[tuple[bytes, Event]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"g-{uuid4().hex}"
        )
        await consumer.start()
        seen: list[tuple[bytes, Event]] = []
        try:
            deadline = time.monotonic() + DEADLINE_S
            while not done(seen) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    seen += [(r.key or b"", decode_any(r.value or b"")) for r in records]
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(consume())


@pytest.fixture
def settings(kafka: KafkaBroker, topic_prefix: str, tmp_path: Path) -> Settings:
    create_topics(kafka.bootstrap, [topic_names(topic_prefix).model_events], 3, 1)
    return Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=topic_prefix,
        registry_tokens={"w-token": "wes:writer"},
        registry_relay_interval=0.1,
    )


def test_changes_are_announced_in_order_keyed_by_model(settings: Settings) -> None:
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201
        for i in range(3):
            meta = {
                "metrics": {"accuracy": 0.5 + i / 10},
                "lineage": {"parent_version": i or None, "code_version": "c1"},
            }
            response = client.post(
                f"/models/{name}/versions/upload",
                files={"artifact": ("m", f"m{i}".encode() * (i + 1))},
                data={"metadata": json.dumps(meta)},
                headers=WRITER,
            )
            assert response.status_code == 201
        url = f"/models/{name}/aliases/production"
        client.put(url, json={"version": 1}, headers=WRITER)
        client.put(url, json={"version": 3}, headers=WRITER)
        client.post(f"{url}/rollback", headers=WRITER)

        def complete(seen: list[tuple[bytes, Event]]) -> bool:
            return sum(isinstance(e, AliasChanged) for _, e in seen) >= 3

        seen = read_model_events(
            settings.kafka_bootstrap, topic_names(settings.topic_prefix).model_events, complete
        )
    events = [e for key, e in seen if key == name.encode()]
    assert [type(e) for e in events] == [ModelCreated] + [ModelVersionRegistered] * 3 + [AliasChanged] * 3
    registered = [e for e in events if isinstance(e, ModelVersionRegistered)]
    assert [e.version for e in registered] == [1, 2, 3]
    # what SQL needs to show a version as the registry does: artifact size, metrics, lineage
    assert [e.artifact_size for e in registered] == [2, 4, 6]
    assert [e.metrics for e in registered] == [{"accuracy": 0.5}, {"accuracy": 0.6}, {"accuracy": 0.7}]
    assert [(e.lineage["parent_version"], e.lineage["code_version"]) for e in registered] == [
        (None, "c1"),
        (1, "c1"),
        (2, "c1"),
    ]
    moves = [(e.action, e.version, e.previous_version) for e in events if isinstance(e, AliasChanged)]
    assert moves == [(AliasAction.SET, 1, None), (AliasAction.MOVED, 3, 1), (AliasAction.ROLLED_BACK, 1, 3)]


def _start_registry(settings: Settings, port: int, relay: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DRIFTLOOP_DATA_DIR": str(settings.data_dir),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{port}",
        "DRIFTLOOP_REGISTRY_TOKENS": TOKENS_JSON,
        "DRIFTLOOP_REGISTRY_RELAY_ENABLED": "true" if relay else "false",
        "DRIFTLOOP_REGISTRY_RELAY_INTERVAL": "0.1",
        "DRIFTLOOP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "services.registry"], env=env)
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("registry did not start")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_change_committed_before_a_crash_is_announced_after_restart(
    settings: Settings, processes: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port("127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    name = f"m-{uuid4().hex[:8]}"
    # relay off: the process commits changes but dies before it could publish any of them
    first = _start_registry(settings, port, relay=False)
    processes.append(first)
    assert httpx.post(f"{base}/models", json={"name": name}, headers=WRITER).status_code == 201
    upload = httpx.post(
        f"{base}/models/{name}/versions/upload", files={"artifact": ("m", b"m")}, headers=WRITER
    )
    assert upload.status_code == 201
    assert httpx.put(
        f"{base}/models/{name}/aliases/production", json={"version": 1}, headers=WRITER
    ).is_success
    first.send_signal(signal.SIGKILL)
    first.wait()

    processes.append(_start_registry(settings, port, relay=True))

    def announced(seen: list[tuple[bytes, Event]]) -> bool:
        return any(isinstance(e, AliasChanged) and e.model_name == name for _, e in seen)

    seen = read_model_events(
        settings.kafka_bootstrap, topic_names(settings.topic_prefix).model_events, announced
    )
    kinds = [type(e) for key, e in seen if key == name.encode()]
    assert kinds == [ModelCreated, ModelVersionRegistered, AliasChanged]
