"""``driftloop bench faults``: a steady stream through a system that crashes, loses its servers and eats poison.

The system is started as a user starts it (``driftloop up``, with its supervisor) in a private data folder on
free ports. A producer logs predictions and their labels through the SDK at a steady rate while the bench,
in turn, kill -9's every service and the ClickHouse server, stops the Kafka broker and then ClickHouse
(SIGSTOP: a server that hangs, the harder case for clients than one that refuses), and throws a poison batch
at the public and the internal topics. Nobody restarts anything: the supervisor and the services' own
waiting must bring everything back. Then it counts, per event, what was stored, dead-lettered, lost or
duplicated, and ends with one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.demo.system import Pace, demo_settings
from driftloop.infra.services import find_service, healthy, service_table
from driftloop.infra.stack import ProcessRecords, process_running
from driftloop.infra.supervisor import SupervisorState
from shared.clickhouse import clickhouse_client
from shared.kafka.clients import producer as kafka_producer
from shared.sdk import Driftloop, ProducerConfig
from shared.settings import Settings
from shared.topics import topic_names

MODEL = "faults"
SERVICES = ("registry", "ingest", "monitor", "trainer", "serving")


@dataclass
class Traffic:
    """The producer thread: predictions at ``rate`` per second, each labelled; what it logged, by id."""

    settings: Settings
    rate: float
    logged_predictions: list[str] = field(default_factory=list)
    logged_labels: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        config = ProducerConfig.from_settings(self.settings, app_name="bench-faults")
        try:
            with Driftloop(config) as dl:
                tick, period, i = time.monotonic(), 0.05, 0
                per_tick = max(1, round(self.rate * period))
                while not self.stop.is_set():
                    for _ in range(per_tick):
                        features = {"x": random.gauss(0, 1), "y": random.choice(["a", "b", "c"]), "z": i % 7}
                        pid = dl.log_prediction(MODEL, "1", features, prediction=i % 2, latency_ms=1.0)
                        dl.log_label(MODEL, pid, label=(i // 3) % 2)
                        self.logged_predictions.append(pid)
                        self.logged_labels += 1
                        i += 1
                    tick += period
                    time.sleep(max(0.0, tick - time.monotonic()))
                if not dl.flush(timeout=600):
                    raise RuntimeError("the SDK could not deliver every event within 10 minutes")
        except BaseException as exc:  # reported by the bench, not lost in a thread
            self.error = exc


def poison_batch(now: datetime) -> list[bytes]:
    """One record per way a careless or hostile producer goes wrong."""

    def event(**overrides: Any) -> bytes:
        base: dict[str, Any] = {
            "model_name": MODEL,
            "model_version": "1",
            "prediction_id": f"poison-{uuid.uuid4().hex[:8]}",
            "occurred_at": now.isoformat(),
            "features": {"x": 1.0},
            "prediction": 1,
        }
        return json.dumps(base | overrides).encode()

    return [
        event(occurred_at="2400-01-01T00:00:00Z"),
        event(occurred_at="1970-01-01T00:00:00Z"),
        event(features={"x": [1, 2, 3]}),
        event(features={"x": {"nested": True}}),
        event(features={"x": 12345}).replace(b"12345", b"1e999"),
        b"\x00\xff\xfe binary garbage",
        json.dumps({"model_name": MODEL, "prediction_id": "p", "label": 1}).encode(),  # a label, wrong topic
    ]


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = kafka_producer(bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=MODEL.encode())
    finally:
        await producer.stop()


class System:
    """The started system: its settings, the pids it recorded and how to ask it things."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = {**os.environ, **settings.as_env()}
        self.data_dir = settings.data_dir.resolve()

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from driftloop.cli.main import main; main()", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def pid(self, name: str) -> int | None:
        for file, section in (("services.json", "services"), ("stack.json", "components")):
            record = ProcessRecords(self.data_dir / file, section).load().get(name)
            if record is not None:
                return record.pid
        return None

    def healthy(self, name: str) -> bool:
        if name in SERVICES:
            spec = find_service(service_table(self.settings), name)
            pid = self.pid(name)
            return healthy(spec, lambda: pid is not None and process_running(pid))
        pid = self.pid(name)
        return pid is not None and process_running(pid)

    def query(self, sql: str) -> Any:
        client = clickhouse_client(self.settings, create_database=False)
        try:
            return client.query(sql).result_rows
        finally:
            client.close()

    def stored(self, prediction_id: str) -> bool:
        try:
            rows = self.query(f"SELECT count() FROM predictions WHERE prediction_id = '{prediction_id}'")
        except Exception:
            return False
        return bool(rows and rows[0][0])

    def restarts(self) -> int:
        return sum(r.restarts for r in SupervisorState(self.data_dir).load().values())


def _wait(check: Callable[[], bool], timeout: float, poll: float = 0.5) -> float | None:
    """Seconds until ``check`` held, or None at the timeout."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic() - began
        time.sleep(poll)
    return None


def recovery(system: System, traffic: Traffic, name: str, timeout: float = 300) -> float | None:
    """Seconds until ``name`` is healthy again and an event logged after the fault is stored."""
    probe_at = len(traffic.logged_predictions)

    def back() -> bool:
        if not system.healthy(name) or len(traffic.logged_predictions) <= probe_at:
            return False
        return system.stored(traffic.logged_predictions[probe_at])

    return _wait(back, timeout)


def say(line: str) -> None:
    print(line, flush=True)


def main(
    rate: float = 500.0, broker_outage_s: float = 30.0, clickhouse_outage_s: float = 600.0
) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="driftloop-faults-"))
    settings = demo_settings(Settings(), data_dir, MODEL, Pace(window_seconds=10, label_wait_seconds=5))
    settings = settings.model_copy(update={"kafka_partitions": 2})
    system = System(settings)
    say(f"starting a private system in {data_dir} (driftloop up) ...")
    up = system.cli("up", timeout=600)
    if up.returncode != 0:
        raise SystemExit(f"driftloop up failed:\n{up.stdout}\n{up.stderr}")
    say(up.stdout.strip())
    try:
        figures = _run(system, rate, broker_outage_s, clickhouse_outage_s)
    finally:
        down = system.cli("down", timeout=300)
        if down.returncode != 0:
            say(f"driftloop down failed: {down.stderr.strip()}")
    print(json.dumps(figures), flush=True)
    return figures


def _run(system: System, rate: float, broker_outage_s: float, clickhouse_outage_s: float) -> dict[str, Any]:
    settings = system.settings
    traffic = Traffic(settings, rate)
    producer = threading.Thread(target=traffic.run, name="traffic", daemon=True)
    recoveries: dict[str, float | None] = {}
    poison: list[bytes] = []
    try:
        import httpx

        schema = {
            "features": [
                {"name": "x", "type": "numeric"},
                {"name": "y", "type": "categorical", "categories": ["a", "b", "c"]},
                {"name": "z", "type": "integer"},
            ]
        }
        httpx.post(
            f"{settings.registry_url}/models", json={"name": MODEL, "feature_schema": schema}, timeout=10
        ).raise_for_status()
        producer.start()
        say(f"steady traffic: {rate:.0f} predictions/s, each labelled, through the SDK")
        time.sleep(20)
        for name in (*SERVICES, "clickhouse"):
            pid = system.pid(name)
            if pid is None:
                say(f"  {name}: not running, skipped")
                continue
            os.kill(pid, signal.SIGKILL)
            recoveries[f"kill -9 {name}"] = took = recovery(system, traffic, name)
            say(f"  kill -9 {name}: back and storing new events after {_fmt(took)}")
            time.sleep(5)
        for name, seconds in (("kafka", broker_outage_s), ("clickhouse", clickhouse_outage_s)):
            pid = system.pid(name)
            if pid is None:
                continue
            say(f"  {name}: stopped for {seconds:.0f} s (SIGSTOP) ...")
            os.kill(pid, signal.SIGSTOP)
            time.sleep(seconds)
            os.kill(pid, signal.SIGCONT)
            recoveries[f"{name} away {seconds:.0f} s"] = took = recovery(system, traffic, name, timeout=900)
            say(f"  {name} back: storing new events again after {_fmt(took)}")
        topics = topic_names(settings.topic_prefix)
        poison = poison_batch(datetime.now(UTC))
        for topic in (topics.predictions_raw, topics.predictions):
            asyncio.run(_produce(settings.kafka_bootstrap, topic, poison))
        say(f"  poison: {len(poison)} records each on {topics.predictions_raw} and {topics.predictions}")
        time.sleep(10)
    finally:
        traffic.stop.set()
        if producer.is_alive():
            producer.join(timeout=700)
    if traffic.error is not None:
        say(f"the producer failed: {traffic.error!r}")
    return count(system, traffic, 2 * len(poison), recoveries)


def count(
    system: System, traffic: Traffic, poison: int, recoveries: dict[str, float | None]
) -> dict[str, Any]:
    """Wait until every event is stored or dead-lettered (or nothing moves for a minute), then count."""
    valid = len(traffic.logged_predictions) + traffic.logged_labels

    def totals() -> tuple[int, int, int, int]:
        (p, p_unique), (l_rows, l_unique), ((d,),) = (
            system.query(
                f"SELECT count(), uniqExact(prediction_id) FROM predictions FINAL WHERE model_name = '{MODEL}'"
            )[0],
            system.query(
                f"SELECT count(), uniqExact(prediction_id) FROM labels FINAL WHERE model_name = '{MODEL}'"
            )[0],
            system.query("SELECT count() FROM dead_letters FINAL"),
        )
        return p_unique + l_unique, p + l_rows - p_unique - l_unique, d, p + l_rows

    last, still_since = None, time.monotonic()
    while time.monotonic() - still_since < 60:
        try:
            now = totals()
        except Exception:
            now = None
        if now is not None and now[0] >= valid and now[2] >= poison:
            break
        if now != last:
            last, still_since = now, time.monotonic()
        time.sleep(2)
    stored, duplicated, dead_lettered, _ = totals()
    timings = [t for t in recoveries.values() if t is not None]
    return {
        "produced": valid + poison,
        "stored": stored,
        "dead_lettered": dead_lettered,
        "lost": max(0, valid - stored),
        "duplicated": duplicated,
        "restarts": system.restarts(),
        "max_recovery_s": round(max(timings), 1) if timings else None,
        "unrecovered": [name for name, t in recoveries.items() if t is None],
        "recovery_s": {name: (round(t, 1) if t is not None else None) for name, t in recoveries.items()},
        "manual_steps": 0,
    }


def _fmt(seconds: float | None) -> str:
    return "NOT WITHIN THE DEADLINE" if seconds is None else f"{seconds:.1f} s"
