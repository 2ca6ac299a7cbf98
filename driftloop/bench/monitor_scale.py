"""Benchmark: monitor events/s with 1, 2, ... worker processes on the same backlog, as a share of the broker's
own consume ceiling measured in the same run (``kafka_ceiling.py``).

For each worker count the workers are started on fresh, empty topics and wait until their consumer group is
settled (every worker owns partitions and together they own them all); then they are paused (SIGSTOP) while
a backlog (many models keyed over the partitions, zstd, acks=all) is put on Kafka, and resumed together
(SIGCONT): the events over the seconds from the resume until the last row is stored are the events/s of
that many workers. Every event is checked stored once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from driftloop.bench import synthetic
from driftloop.bench.cleanup import clean_up
from driftloop.bench.kafka_ceiling import BrokerCeiling, measure_broker_ceiling, prediction_payloads
from driftloop.bench.monitor import start_monitor_worker, write_profiles
from driftloop.process import ManagedProcess
from shared import wire
from shared.settings import Settings

WINDOW_S = 60
PAUSED_S = 600.0
"""The workers' session timeout: longer than producing the backlog takes, while they are paused."""
PER_WINDOW = 10_000
"""Events per model and window, as in ``driftloop bench monitor``: windows are judged during the drain."""


def models_spread_over(partitions: int, per_partition: int, prefix: str = "model") -> list[str]:
    """Model names the producers' key hashing puts ``per_partition`` on each of ``partitions`` partitions.

    >>> names = models_spread_over(3, 2)
    >>> len(names), len(set(names))
    (6, 6)
    """
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    every = list(range(partitions))
    found: dict[int, list[str]] = {p: [] for p in every}
    i = 0
    while any(len(names) < per_partition for names in found.values()):
        name = f"{prefix}-{i}"
        spot = found[choose(name.encode(), every, every)]
        if len(spot) < per_partition:
            spot.append(name)
        i += 1
    return [name for p in every for name in found[p]]


def specs(models: Sequence[str], features: int) -> list[synthetic.StreamSpec]:
    """One stationary stream per model, ``features`` features (a fifth of them categorical)."""
    return [
        synthetic.StreamSpec(name, features - features // 5, features // 5, seed=i)
        for i, name in enumerate(models)
    ]


def backlog(
    streams: Sequence[synthetic.StreamSpec], events: int, start: datetime
) -> Iterator[wire.PredictionWire]:
    """``events`` events shared evenly by the streams, interleaved in chunks as live traffic would be."""
    spacing = timedelta(seconds=WINDOW_S) / PER_WINDOW
    share = -(-events // len(streams))
    sources = [synthetic.predictions(s, share, start, spacing) for s in streams]
    left = events
    while left > 0:
        for source in sources:
            chunk = list(islice(source, min(1_000, left)))
            left -= len(chunk)
            yield from chunk
            if left <= 0:
                return


def _owned(web_port: int) -> list[str]:
    """The events partitions a worker owns while it reports ok (none otherwise)."""
    import httpx

    try:
        body = httpx.get(f"http://127.0.0.1:{web_port}/health", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return []
    return list(body.get("partitions", [])) if body.get("status") == "ok" else []


def _count(client: Any, final: bool = False) -> int:
    try:
        return int(client.command(f"SELECT count() FROM predictions{' FINAL' if final else ''}"))
    except Exception:  # tables not created yet
        return 0


def _wait(check: Any, timeout: float, what: str, poll: float = 0.1) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if check():
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def drain(
    base: Settings, workers: int, events: int, *, features: int, partitions: int, models_per_partition: int
) -> float:
    """Events/s ``workers`` monitor processes store a backlog of ``events`` at, once their group is settled."""
    from driftloop.bench.monitor import publish_events
    from shared.clickhouse import clickhouse_client
    from shared.kafka.admin import create_topics
    from shared.topics import topic_names

    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "topic_prefix": f"bench-{tag}-",
            "clickhouse_database": f"bench_{tag}",
            "kafka_partitions": partitions,
            "monitor_window_seconds": WINDOW_S,
            "monitor_allowed_lateness_seconds": 0,
            "monitor_session_timeout_seconds": PAUSED_S,
        }
    )
    topics = topic_names(settings.topic_prefix)
    streams = specs(models_spread_over(partitions, models_per_partition), features)
    start = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    procs: list[ManagedProcess] = []
    try:
        create_topics(settings.kafka_bootstrap, topics.all(), partitions, settings.kafka_replication_factor)
        with tempfile.TemporaryDirectory() as tmp:
            reference = synthetic.reference_profile(streams[0], rows=5_000)  # the streams share one shape
            profiles = write_profiles(Path(tmp), {s.model_name: reference for s in streams})
            ports = []
            for i in range(workers):
                proc, port = start_monitor_worker(settings, profiles, Path(tmp), f"monitor-{i}")
                procs.append(proc)
                ports.append(port)
            everything = {f"{topics.predictions}-{p}" for p in range(partitions)}

            def settled() -> bool:
                owned = [
                    {p for p in _owned(port) if p.rpartition("-")[0] == topics.predictions} for port in ports
                ]
                return all(owned) and set().union(*owned) == everything

            _wait(settled, 180, f"{workers} workers sharing the partitions", poll=0.1)
            # Paused while the backlog is produced, so no worker has a head start on it; they stay in the
            # group (the session timeout outlasts the pause) and are resumed together when the clock starts.
            for proc in procs:
                os.killpg(proc.pid, signal.SIGSTOP)
            try:
                sent = asyncio.run(
                    publish_events(
                        settings.kafka_bootstrap,
                        topics.predictions,
                        backlog(streams, events, start),
                        compression="zstd",
                    )
                )
            finally:
                for proc in procs:
                    os.killpg(proc.pid, signal.SIGCONT)
            began = time.monotonic()
            client = clickhouse_client(settings)
            done = _wait(lambda: _count(client) >= sent, 900, "every row stored", poll=0.1)
            once = _count(client, final=True)
            if once != sent:
                raise RuntimeError(f"stored {once:,} distinct events, expected {sent:,}")
            if not settled():
                raise RuntimeError("a worker left the group during the run: the figure would not be theirs")
    finally:
        for proc in procs:
            proc.stop()
        clean_up(settings)
    rate = sent / (done - began)
    print(
        f"{workers} worker(s): {sent:,} events stored in {done - began:.1f}s from their resume: {rate:,.0f} events/s"
    )
    return rate


def main(
    workers: Sequence[int] = (1, 2),
    events: int = 200_000,
    features: int = 40,
    partitions: int = 6,
    models_per_partition: int = 2,
    ceiling_records: int = 200_000,
) -> dict[str, float]:
    """Broker ceiling, then events/s per worker count; ends with one JSON line."""
    from driftloop.infra.stack import Component, local_stack

    if max(workers) > partitions:
        raise ValueError(f"{max(workers)} workers need at least as many partitions (have {partitions})")
    base = Settings()
    load_before = os.getloadavg()[0]
    with local_stack(base, components=[Component.KAFKA, Component.CLICKHOUSE]):
        payloads = prediction_payloads(features=features)
        print(f"broker ceiling: {ceiling_records:,} records of {sum(map(len, payloads)) / len(payloads):.0f} B "
              f"(zstd, acks=all, idempotent) over {partitions} partitions with Kafka's perf tools ...")  # fmt: skip
        ceiling = measure_broker_ceiling(
            base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-"}),
            payloads,
            records=ceiling_records,
            partitions=partitions,
        )
        print(
            f"broker: produce {ceiling.produce_events_per_s:,.0f} events/s, consume {ceiling.consume_events_per_s:,.0f} events/s"
        )
        rates = {
            n: drain(
                base,
                n,
                events,
                features=features,
                partitions=partitions,
                models_per_partition=models_per_partition,
            )
            for n in workers
        }
    figures = scale_figures(rates, ceiling)
    figures |= {"load_1m_before": round(load_before, 1), "load_1m_after": round(os.getloadavg()[0], 1)}
    figures |= {"events": events, "features": features, "partitions": partitions,
                "models": partitions * models_per_partition, "record_bytes": round(ceiling.record_bytes)}  # fmt: skip
    print(f"monitor's share of the broker's consume ceiling: {figures['monitor_share_of_ceiling']:.2f}")
    print(json.dumps(figures))
    return figures


def scale_figures(rates: dict[int, float], ceiling: BrokerCeiling) -> dict[str, Any]:
    """The JSON figures: events/s per worker count, the broker's rates and the best rate's share of them.

    >>> c = BrokerCeiling(40_000.0, 100_000.0, 1000, 950.0, 6)
    >>> scale_figures({1: 20_000.0, 2: 30_000.0}, c)["monitor_share_of_ceiling"]
    0.3
    """
    figures: dict[str, Any] = {f"events_per_s_{n}w": round(r) for n, r in sorted(rates.items())}
    figures |= {
        "broker_produce_events_per_s": round(ceiling.produce_events_per_s),
        "broker_consume_events_per_s": round(ceiling.consume_events_per_s),
        "broker_ceiling_events_per_s": round(ceiling.events_per_s),
        "monitor_share_of_ceiling": round(ceiling.share(max(rates.values())), 3),
    }
    return figures
