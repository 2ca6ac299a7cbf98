"""A running model server follows its alias: swaps under steady traffic, past records that are not events,
refuses a corrupted artifact, and follows its alias while Kafka is away."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from driftloop.infra.kafka import start_kafka
from driftloop.process import free_port
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import KafkaBroker, free_ports

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w-token"}
DEADLINE_S = 60.0


def model_bytes(constant: int) -> bytes:
    """A scikit-learn pipeline that always answers ``constant``, pickled with joblib."""
    x = pd.DataFrame({"x": np.linspace(0, 1, 20)})
    pipeline = make_pipeline(StandardScaler(), DummyClassifier(strategy="constant", constant=constant))
    pipeline.fit(x, [0, 1] * 10)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    return buffer.getvalue()


def wait_until(check: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def stack(kafka: KafkaBroker, topic_prefix: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    topics = topic_names(topic_prefix)
    create_topics(kafka.bootstrap, [topics.model_events, topics.predictions_raw, topics.labels_raw], 3, 1)
    registry_port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "DRIFTLOOP_DATA_DIR": str(tmp_path),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "DRIFTLOOP_TOPIC_PREFIX": topic_prefix,
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{registry_port}",
        "DRIFTLOOP_REGISTRY_TOKENS": json.dumps({"w-token": "wes:writer"}),
        "DRIFTLOOP_REGISTRY_RELAY_INTERVAL": "0.1",
        "DRIFTLOOP_LOG_LEVEL": "WARNING",
    }
    processes = [subprocess.Popen([sys.executable, "-m", "services.registry"], env=env)]
    registry = f"http://127.0.0.1:{registry_port}"
    try:
        wait_until(lambda: httpx.get(f"{registry}/healthz").status_code == 200, "the registry")
        yield {"env": env, "registry": registry, "processes": processes, "topics": topics, "kafka": kafka}
    finally:
        for p in processes:
            p.kill()
            p.wait()


def register(registry: str, name: str, data: bytes) -> dict[str, object]:
    response = httpx.post(
        f"{registry}/models/{name}/versions/upload",
        files={"artifact": ("model.joblib", data)},
        headers=WRITER,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def promote(registry: str, name: str, version: int) -> None:
    url = f"{registry}/models/{name}/aliases/production"
    assert httpx.put(url, json={"version": version}, headers=WRITER).status_code == 200


POISON: list[bytes | None] = [
    None,  # a tombstone
    b"",
    b"\xff\xfe not UTF-8",
    b"[" * 200_000,  # nesting no parser takes
    b'{"event_type": "alias_changed", "model_name": "' + b"x" * 900_000 + b'"}',
    b'{"event_type": "no_such_event"}',
]


def produce_raw(bootstrap: str, topic: str, key: bytes, values: list[bytes | None]) -> None:
    """Records as any Kafka client could write them, not through Driftloop's contract."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=2 << 20)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())


def read_predictions(bootstrap: str, topic: str, name: str, want_version: str) -> list[dict[str, object]]:
    async def consume() -> list[dict[str, object]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        seen: list[dict[str, object]] = []
        try:
            deadline = time.monotonic() + DEADLINE_S
            while time.monotonic() < deadline and not any(e["model_version"] == want_version for e in seen):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen += [json.loads(r.value or b"{}") for r in records]
        finally:
            await consumer.stop()
        return [e for e in seen if e.get("model_name") == name]

    return asyncio.run(consume())


def test_server_swaps_under_traffic_and_keeps_serving_past_a_corrupted_artifact(
    stack: dict[str, object],
) -> None:
    registry = str(stack["registry"])
    name = f"churn-{uuid4().hex[:8]}"
    schema = {"features": [{"name": "x", "type": "numeric", "nullable": False}]}
    assert httpx.post(
        f"{registry}/models", json={"name": name, "feature_schema": schema}, headers=WRITER
    ).is_success
    register(registry, name, model_bytes(0))
    register(registry, name, model_bytes(1))
    promote(registry, name, 1)

    port = free_port("127.0.0.1")
    server = f"http://127.0.0.1:{port}"
    stack["processes"].append(  # type: ignore[attr-defined]
        subprocess.Popen(
            [sys.executable, "-m", "services.serving", "--model", name, "--port", str(port)],
            env=stack["env"],  # type: ignore[arg-type]
        )
    )
    wait_until(lambda: httpx.get(f"{server}/healthz").status_code == 200, "the model server")

    results: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=server, timeout=10) as http:
            while not stop.is_set():
                try:
                    response = http.post("/predict", json={"features": {"x": 0.3}})
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    results.append((response.status_code, version))
                except httpx.HTTPError:
                    results.append((0, None))

    thread = threading.Thread(target=traffic)
    thread.start()
    kafka = stack["kafka"]
    topics = stack["topics"]
    try:
        wait_until(lambda: len(results) > 20, "first responses")
        model_events = topics.model_events  # type: ignore[attr-defined]
        produce_raw(kafka.bootstrap, model_events, name.encode(), POISON)  # type: ignore[attr-defined]
        wait_until(
            lambda: httpx.get(f"{server}/status").json()["watcher"]["skipped_records"] == len(POISON),
            "the watcher to skip every record that is not an event",
        )
        promoted_at = time.monotonic()
        promote(registry, name, 2)
        wait_until(lambda: any(v == 2 for _, v in results), "the swap to version 2")
        print(f"\nswap seen by clients {time.monotonic() - promoted_at:.3f}s after the alias moved")

        corrupted = register(registry, name, model_bytes(0))
        Path(str(corrupted["artifact_uri"]).removeprefix("file://")).write_bytes(b"not a model")
        promote(registry, name, 3)

        def refused() -> bool:
            status = httpx.get(f"{server}/status").json()
            return bool(status["last_error"]) and "hashes to" in status["last_error"]

        wait_until(refused, "the server to refuse version 3")
        served_before = len(results)
        wait_until(lambda: len(results) > served_before + 20, "more responses after the refusal")
    finally:
        stop.set()
        thread.join()

    failures = [r for r in results if r[0] != 200]
    assert failures == []
    versions = [v for _, v in results]
    assert set(versions) == {1, 2}
    assert versions[-1] == 2 and httpx.get(f"{server}/status").json()["version"] == 2
    assert versions == sorted(versions)  # never flipped back once swapped

    logged = read_predictions(kafka.bootstrap, topics.predictions_raw, name, "2")  # type: ignore[attr-defined]
    assert {e["model_version"] for e in logged} <= {"1", "2"}
    assert any(e["model_version"] == "2" and e["features"] == {"x": 0.3} for e in logged)


def test_invalid_features_are_refused_naming_the_feature(stack: dict[str, object]) -> None:
    registry = str(stack["registry"])
    name = f"churn-{uuid4().hex[:8]}"
    schema = {"features": [{"name": "x", "type": "numeric", "nullable": False}]}
    httpx.post(f"{registry}/models", json={"name": name, "feature_schema": schema}, headers=WRITER)
    register(registry, name, model_bytes(1))
    promote(registry, name, 1)
    port = free_port("127.0.0.1")
    stack["processes"].append(  # type: ignore[attr-defined]
        subprocess.Popen(
            [sys.executable, "-m", "services.serving", "--model", name, "--port", str(port), "--no-publish"],
            env=stack["env"],  # type: ignore[arg-type]
        )
    )
    server = f"http://127.0.0.1:{port}"
    wait_until(lambda: httpx.get(f"{server}/healthz").status_code == 200, "the model server")
    refused = httpx.post(f"{server}/predict", json={"features": {"x": "abc"}})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "features.x"
    ok = httpx.post(f"{server}/predict", json={"features": {"x": 1.5}}).json()
    assert ok["prediction"] == 1 and ok["probabilities"] == {"0": 0.0, "1": 1.0}


def test_server_started_while_kafka_is_down_follows_its_alias_and_reports_the_outage_once(
    stack: dict[str, object], tmp_path: Path
) -> None:
    """The registry is enough to swap: the periodic alias check runs while the server cannot reach Kafka.

    The server's broker is a private one that is started only after the swap, so the test also sees the
    watcher reconnect, then lose it again; the registry keeps publishing to the session broker meanwhile.
    """
    registry = str(stack["registry"])
    name = f"churn-{uuid4().hex[:8]}"
    schema = {"features": [{"name": "x", "type": "numeric", "nullable": False}]}
    httpx.post(f"{registry}/models", json={"name": name, "feature_schema": schema}, headers=WRITER)
    register(registry, name, model_bytes(0))
    register(registry, name, model_bytes(1))
    promote(registry, name, 1)

    host = "127.0.0.1"
    kafka_port, controller_port = free_ports(2, host)
    env = {
        **stack["env"],  # type: ignore[dict-item]
        "DRIFTLOOP_KAFKA_BOOTSTRAP": f"{host}:{kafka_port}",  # nobody listens there yet
        "DRIFTLOOP_SERVING_ALIAS_CHECK_SECONDS": "1",
        "DRIFTLOOP_LOG_LEVEL": "INFO",
    }
    port = free_port(host)
    server = f"http://{host}:{port}"
    server_log = tmp_path / "server.log"
    with server_log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.serving", "--model", name, "--port", str(port), "--no-publish"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stack["processes"].append(process)  # type: ignore[attr-defined]
    broker = None
    try:
        wait_until(lambda: httpx.get(f"{server}/healthz").status_code == 200, "the model server")
        started = time.monotonic()

        def watcher() -> dict[str, object]:
            return httpx.get(f"{server}/status").json()["watcher"]  # type: ignore[no-any-return]

        wait_until(lambda: watcher()["last_error"] is not None, "the watcher to try Kafka")
        away = watcher()
        assert away["connected"] is False and away["since"]
        assert httpx.get(f"{server}/status").json()["version"] == 1

        promote(registry, name, 2)
        moved = time.monotonic()
        wait_until(lambda: httpx.get(f"{server}/status").json()["version"] == 2, "the swap without Kafka")
        print(f"\nswap without Kafka {time.monotonic() - moved:.2f}s after the alias moved (check every 1 s)")
        assert time.monotonic() - moved < 10, "the periodic check (every 1 s) should have swapped"
        time.sleep(max(0.0, 8 - (time.monotonic() - started)))  # an outage of several retries
        assert watcher()["connected"] is False

        broker = start_kafka(
            host, kafka_port, controller_port, tmp_path / "broker", tmp_path / "b.log", Settings()
        )
        wait_until(lambda: watcher()["connected"] is True, "the watcher to reconnect")
        assert watcher()["since"] != away["since"]

        broker.stop()  # a server that was connected loses Kafka: it notices, says so, and still swaps
        broker = None
        lost = time.monotonic()
        wait_until(lambda: watcher()["connected"] is False, "the watcher to notice Kafka is gone")
        promote(registry, name, 1)
        wait_until(
            lambda: httpx.get(f"{server}/status").json()["version"] == 1, "the swap back without Kafka"
        )
        time.sleep(max(0.0, 8 - (time.monotonic() - lost)))
    except AssertionError as exc:  # what the server said is what tells why
        said = [line for line in server_log.read_text().splitlines() if "HTTP Request" not in line]
        raise AssertionError(f"{exc}\n--- the model server's log ---\n" + "\n".join(said[-60:])) from exc
    finally:
        process.terminate()
        process.wait()
        if broker is not None:
            broker.stop()

    text = server_log.read_text()
    lines = text.splitlines()
    back = [i for i, line in enumerate(lines) if "Kafka at" in line and "reachable again" in line]
    assert len(back) == 1, text
    outage = [
        line
        for line in lines[: back[0]]
        if "aiokafka" in line or "watcher" in line or str(kafka_port) in line
    ]
    assert len(outage) == 1 and "unreachable" in outage[0], "\n".join(outage)  # not one per retry
    second = [line for line in lines[back[0] + 1 :] if line.startswith(("WARNING", "ERROR"))]
    assert sum("unreachable" in line for line in second) == 1, "\n".join(second)
    client = [line for line in second if "aiokafka" in line]  # its first complaint at most, not its retries
    assert len(client) <= 2 and len(set(client)) == len(client), "\n".join(second)
    assert "Traceback" not in text and "Unclosed" not in text
