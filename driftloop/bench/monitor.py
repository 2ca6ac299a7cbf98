"""Benchmark: the monitor end to end, from Kafka to queryable ClickHouse rows, and how well it detects drift.

Phase 1 puts a stationary stream and a stream with a known change point on Kafka, starts one monitor worker
and times it from its first stored batch until every row is stored (events/s), then reads the drift events
it raised (detection delay in events after the change point, false alarms per million stationary events).
Phase 2 sends live traffic at a steady rate and times each chunk from the producer's acknowledgement to its
rows being counted. Phase 3, with the worker stopped, measures Kafka's own ceiling for the same events with
the broker's perf tools (``kafka_ceiling.py``), so the JSON line holds the monitor's share of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from driftloop.bench import synthetic
from driftloop.bench.cleanup import clean_up
from driftloop.process import ManagedProcess, free_port, spawn
from shared import wire
from shared.kafka.clients import producer as kafka_producer
from shared.profile import ReferenceProfile
from shared.settings import Settings

WINDOW_S = 60


async def publish_events(
    bootstrap: str, topic: str, events: Iterable[Any], compression: str | None = None
) -> int:
    """Publish wire events keyed by model name (acks=all, idempotent), in flights of 20k; returns the count."""
    producer = kafka_producer(bootstrap, linger_ms=20, max_batch_size=1 << 20, compression_type=compression)
    await producer.start()
    sent = 0
    try:
        pending = []
        for e in events:
            pending.append(await producer.send(topic, wire.encode(e), key=e.model_name.encode()))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def write_profiles(folder: Path, profiles: Mapping[str, ReferenceProfile]) -> Path:
    """The profiles file a monitor worker reads (``--profiles``): each model's profile as its version "1"."""
    from services.monitor.domain.profiles import profiles_file_json

    path = folder / "profiles.json"
    path.write_text(profiles_file_json({model: {"1": profile} for model, profile in profiles.items()}))
    return path


def start_monitor_worker(
    settings: Settings, profiles: Path, folder: Path, name: str = "monitor"
) -> tuple[ManagedProcess, int]:
    """One monitor worker process on a free web port, judging against the reference profiles in ``profiles``;
    returns the process and its web port (its log is ``folder/<name>.log``)."""
    port = free_port()
    argv = [sys.executable, "-m", "services.monitor", "--web-port", str(port), "--profiles", str(profiles)]
    return spawn(name, argv, folder / f"{name}.log", env=settings.as_env()), port


def _count(client: Any, model: str | None = None, final: bool = False) -> int:
    """Rows stored (for ``model``). Without FINAL it is read from part metadata and costs the server
    nothing, which matters: the poll shares the server's two cores with the inserts it measures.
    FINAL (each event once) is checked once at the end."""
    where = "" if model is None else " WHERE model_name = {m:String}"
    try:
        return int(
            client.command(
                f"SELECT count() FROM predictions{' FINAL' if final else ''}{where}", parameters={"m": model}
            )
        )
    except Exception:  # tables not created yet
        return 0


def _consuming(web_port: int) -> bool:
    """The worker answers /health with 200 once it consumes (after joining its consumer group)."""
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{web_port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(check: Any, timeout: float, what: str, poll: float = 0.2) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU a process has used so far, from /proc (0 off Linux or when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_seconds(metrics_text: str) -> dict[str, float]:
    """Mean seconds per batch of each worker stage, from the worker's Prometheus text."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        for suffix, into in (("_sum", sums), ("_count", counts)):
            prefix = f'driftloop_monitor_batch_seconds{suffix}{{stage="'
            if line.startswith(prefix):
                stage, _, value = line[len(prefix) :].partition('"} ')
                into[stage] = float(value)
    return {stage: sums[stage] / counts[stage] for stage in sums if counts.get(stage)}


def _server_pid(stack: Any, component: Any) -> int | None:
    """The pid of a server the local stack runs (None for an external one)."""
    record = stack.state.live(component)
    return record.pid if record is not None else None


def _live_latencies(
    settings: Settings, client: Any, chunks: int, chunk_size: int, interval: float
) -> list[float]:
    """Seconds from each chunk's acknowledgement to all its rows being counted, at a steady rate.

    A thread polls the row count while the chunks are sent, so each chunk is timed from its own ack.
    """

    spec = synthetic.StreamSpec("bench-live", seed=9)
    topic = f"{settings.topic_prefix}predictions"
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append((time.monotonic(), _count(client, "bench-live")))
            time.sleep(0.02)

    async def send() -> list[tuple[float, int]]:
        producer = kafka_producer(settings, enable_idempotence=False, linger_ms=5)
        await producer.start()
        acked: list[tuple[float, int]] = []
        try:
            for i in range(chunks):
                events = synthetic.predictions(
                    spec, chunk_size, datetime.now(UTC), timedelta(microseconds=100)
                )
                futures = [await producer.send(topic, wire.encode(e), key=b"bench-live") for e in events]
                await asyncio.gather(*futures)
                acked.append((time.monotonic(), (i + 1) * chunk_size))
                await asyncio.sleep(interval)
        finally:
            await producer.stop()
        return acked

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        acked = asyncio.run(send())
        _wait(lambda: bool(seen) and seen[-1][1] >= chunks * chunk_size, 120, "live rows")
    finally:
        stop.set()
        poller.join()
    return [next(t for t, n in seen if t >= at and n >= cumulative) - at for at, cumulative in acked]


def main(events: int = 200_000, features: int = 20, ceiling_records: int = 200_000) -> dict[str, float]:
    import httpx

    from driftloop.bench.kafka_ceiling import measure_broker_ceiling, prediction_payloads
    from driftloop.infra.stack import Component, local_stack
    from driftloop.process import InfraError
    from shared.clickhouse import clickhouse_client
    from shared.kafka.admin import create_topics
    from shared.topics import topic_names

    base = Settings()
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "topic_prefix": f"bench-{tag}-",
            "clickhouse_database": f"bench_{tag}",
            "monitor_window_seconds": WINDOW_S,
            "monitor_allowed_lateness_seconds": 0,
        }
    )
    numeric, categorical = features - features // 5, features // 5
    calm = synthetic.StreamSpec("bench-calm", numeric, categorical, seed=1)
    change_at = events // 4
    shift = synthetic.StreamSpec(
        "bench-shift",
        numeric,
        categorical,
        shifted=("num_0", "cat_0"),
        change_at=change_at,
        numeric_shift=0.5,
        seed=2,
    )
    per_window = 10_000
    spacing = timedelta(seconds=WINDOW_S) / per_window
    start = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    load_before = os.getloadavg()[0]
    ceiling: dict[str, Any] = {}

    with (
        local_stack(base, components=[Component.KAFKA, Component.CLICKHOUSE]) as stack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        topics = topic_names(settings.topic_prefix)
        create_topics(
            settings.kafka_bootstrap,
            topics.all(),
            settings.kafka_partitions,
            settings.kafka_replication_factor,
        )
        profiles = write_profiles(
            Path(tmp),
            {
                "bench-calm": synthetic.reference_profile(calm),
                "bench-shift": synthetic.reference_profile(shift),
            },
        )
        print(
            f"producing {events:,} stationary + {events // 2:,} shifting events with {features} features ..."
        )
        asyncio.run(
            publish_events(
                settings.kafka_bootstrap,
                topics.predictions,
                synthetic.predictions(calm, events, start, spacing),
            )
        )
        asyncio.run(
            publish_events(
                settings.kafka_bootstrap,
                topics.predictions,
                synthetic.predictions(shift, events // 2, start, spacing),
            )
        )
        worker, web_port = start_monitor_worker(settings, profiles, Path(tmp))
        try:
            client = clickhouse_client(settings)
            _wait(lambda: _consuming(web_port), 120, "the monitor worker")
            servers = {"clickhouse": Component.CLICKHOUSE, "kafka": Component.KAFKA}
            pids = {"worker": worker.pid} | {
                name: pid for name, c in servers.items() if (pid := _server_pid(stack, c)) is not None
            }  # external servers are not measured
            total = events + events // 2
            # The clock starts when the first batch is stored and counts only the rows after it: the worker
            # consumes as soon as it has joined, possibly before it answers /health, and that head start
            # would otherwise inflate the rate.
            _wait(lambda: _count(client) > 0, 120, "the first stored batch", poll=0.05)
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            began, first = time.monotonic(), _count(client)
            if first >= total:
                raise RuntimeError(f"all {total:,} events were stored in one batch: too few to time")
            done = _wait(lambda: _count(client) >= total, 900, "rows", poll=0.1)
            timed = total - first
            cpu = {name: (cpu_seconds(pid) - cpu_before[name]) * 1e6 / timed for name, pid in pids.items()}
            stages = stage_seconds(httpx.get(f"http://127.0.0.1:{web_port}/metrics", timeout=5).text)
            once = _count(client, final=True)
            if once != total:
                raise RuntimeError(f"stored {once:,} distinct events, expected {total:,}")
            events_per_s = timed / (done - began)
            print(
                f"monitor stored {timed:,} events after its first batch in {done - began:.1f}s: "
                f"{events_per_s:,.0f} events/s"
            )
            print("CPU per event: " + ", ".join(f"{name} {us:.1f} µs" for name, us in cpu.items()))
            print("worker seconds per batch: " + ", ".join(f"{k} {v:.3f}" for k, v in stages.items()))
            closed = events // per_window - 1
            _wait(
                lambda: (
                    int(client.command("SELECT count() FROM window_metrics FINAL WHERE metric = 'count'"))
                    >= closed + (events // 2) // per_window - 1
                ),
                300,
                "windows judged",
            )
            alerts = client.query(
                "SELECT model_name, event_type, window_end, drifted_features FROM drift_events FINAL ORDER BY window_end"
            ).result_rows
            latencies = _live_latencies(settings, client, chunks=40, chunk_size=500, interval=0.25)
        finally:
            worker.stop()
            clean_up(settings)
        payloads = prediction_payloads(features=features)
        print(
            f"Kafka's consume ceiling: {ceiling_records:,} records of "
            f"{sum(map(len, payloads)) / len(payloads):.0f} B with the broker's perf tools ...",
            flush=True,
        )
        try:
            broker = measure_broker_ceiling(settings, payloads, records=ceiling_records)
        except InfraError as exc:  # no Maven or Java: the other figures stand
            print(f"could not measure Kafka's ceiling: {str(exc)[:500]}")
        else:
            ceiling = {
                "kafka_consume_ceiling_events_per_s": round(broker.consume_events_per_s),
                "kafka_produce_ceiling_events_per_s": round(broker.produce_events_per_s),
            }
    false_alarms = [a for a in alerts if a[0] == "bench-calm" and a[1] == "drift_detected"]
    detected = [a for a in alerts if a[0] == "bench-shift" and a[1] == "drift_detected"]
    change_time = start + spacing * change_at
    delay_events = (
        int((detected[0][2].replace(tzinfo=UTC) - change_time) / spacing) if detected else float("nan")
    )
    figures = {
        "events_per_s": round(events_per_s),
        "queryable_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "queryable_p99_s": round(float(np.percentile(latencies, 99)), 3),
        "detection_delay_events": delay_events,
        "detected_features": sorted(detected[0][3]) if detected else [],
        "false_alarms_per_million": round(len(false_alarms) * 1e6 / events, 2),
        "features": features,
        "events": total,
        **{f"{name}_cpu_us_per_event": round(us, 1) for name, us in cpu.items()},
        "cpu_us_per_event": round(sum(cpu.values()), 1),
        "kafka_consume_ceiling_events_per_s": None,
        "share_of_kafka_ceiling": None,
        **ceiling,
        "load_1m_before": round(load_before, 2),
        "load_1m_after": round(os.getloadavg()[0], 2),
    }
    if ceiling:
        figures["share_of_kafka_ceiling"] = round(
            events_per_s / ceiling["kafka_consume_ceiling_events_per_s"], 3
        )
    print(
        f"rows queryable after the producer's ack: p50 {figures['queryable_p50_s']}s, p99 {figures['queryable_p99_s']}s"
    )
    print(
        f"drift detected {delay_events} events after the change point, naming {figures['detected_features']}"
    )
    print(f"false drift events per million stationary events: {figures['false_alarms_per_million']}")
    if ceiling:
        print(
            f"Kafka consumed {ceiling['kafka_consume_ceiling_events_per_s']:,} events/s with its perf tools: "
            f"the monitor drained {figures['share_of_kafka_ceiling']:.1%} of that"
        )
    print(f"load average (1 min): {figures['load_1m_before']} before, {figures['load_1m_after']} after")
    print(json.dumps(figures))
    return figures
