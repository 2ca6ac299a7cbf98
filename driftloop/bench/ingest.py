"""Benchmark: prediction events per second into Kafka through the SDK and through the HTTP batch endpoint.

Uses the configured broker when it answers, otherwise starts a private one in a temporary folder. The
HTTP figure is end to end over a real socket: uvicorn, validation, and Kafka acknowledgements (acks=all).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from uuid import uuid4

import httpx
from pydantic import Secret

from driftloop.bench.cleanup import clean_up
from driftloop.bench.events import sample_prediction_fields
from driftloop.infra.stack import Component, local_stack
from driftloop.process import free_port
from shared.kafka.admin import create_topics
from shared.sdk import Driftloop, ProducerConfig
from shared.settings import Settings
from shared.topics import topic_names


@contextlib.contextmanager
def _broker(settings: Settings) -> Iterator[str]:
    """The configured broker, started for the length of the benchmark when it is local and not running."""
    with local_stack(settings, components=[Component.KAFKA]):
        yield settings.kafka_bootstrap


def bench_sdk(settings: Settings, n: int, spool: Path) -> dict[str, float]:
    """Log ``n`` predictions and flush: events/s until every acknowledgement, and the app-side call rate."""
    rng = random.Random(7)
    samples = [sample_prediction_fields(rng) for _ in range(1000)]
    config = ProducerConfig.from_settings(settings.model_copy(update={"data_dir": spool}), app_name="bench")
    with Driftloop(config) as dl:
        dl.log_prediction(**samples[0])  # connect before the clock starts
        dl.flush(timeout=60)
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(n):
            fields = samples[i % 1000]
            dl.log_prediction(
                fields["model_name"],
                fields["model_version"],
                fields["features"],
                fields["prediction"],
                probabilities=fields["probabilities"],
                latency_ms=fields["latency_ms"],
            )
        logged = time.perf_counter() - started
        if not dl.flush(timeout=300):
            raise RuntimeError("the SDK did not deliver within 300 s")
        total = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        spilled = dl.stats().spilled
    return {
        "sdk_events_per_s": round(n / total),
        "sdk_cpu_us_per_event": round(cpu / n * 1e6, 2),
        "sdk_log_calls_per_s": round(n / logged),
        "sdk_spilled_to_disk": spilled,
    }


def bench_http(settings: Settings, n: int, batch_size: int, clients: int) -> dict[str, float]:
    """POST ``n`` predictions in JSON-array batches from ``clients`` threads to a real uvicorn server."""
    import uvicorn

    from services.ingest.bootstrap import bootstrap
    from services.ingest.domain.schemas import StaticSchemaSource
    from services.ingest.entrypoints.http import create_app

    key = "bench-key"
    port = free_port()
    # model_copy does not validate: the keys go in as the Secret the setting holds
    settings = settings.model_copy(update={"ingest_api_keys": Secret({key: "bench"}), "ingest_port": port})
    app = create_app(
        bootstrap(settings, schemas=StaticSchemaSource({}, default="no_schema")), run_validator=False
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    rng = random.Random(11)
    bodies = [
        json.dumps([sample_prediction_fields(rng) for _ in range(batch_size)]).encode()
        for _ in range(max(1, n // batch_size))
    ]
    url = f"http://127.0.0.1:{port}/v1/predictions/batch"
    headers = {"X-API-Key": key, "Content-Type": "application/json"}

    def post_all(share: list[bytes]) -> int:
        accepted = 0
        with httpx.Client(timeout=60) as client:
            for body in share:
                response = client.post(url, content=body, headers=headers)
                response.raise_for_status()
                accepted += response.json()["accepted"]
        return accepted

    try:
        post_all(bodies[:1])  # warm up: Kafka connection, code paths
        started, cpu_started = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(clients) as pool:
            accepted = sum(pool.map(post_all, [bodies[i::clients] for i in range(clients)]))
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return {
        "http_events_per_s": round(accepted / elapsed),
        "http_cpu_us_per_event": round(cpu / max(accepted, 1) * 1e6, 2),  # server and clients, one process
        "http_batch_size": batch_size,
        "http_clients": clients,
    }


def main(
    n: int = 200_000, http_n: int = 200_000, batch_size: int = 5000, clients: int = 2
) -> dict[str, float]:
    base = Settings()
    with _broker(base) as bootstrap, tempfile.TemporaryDirectory(prefix="driftloop-bench-spool-") as spool:
        settings = base.model_copy(
            update={"kafka_bootstrap": bootstrap, "topic_prefix": f"bench-{uuid4().hex[:6]}-"}
        )
        topics = topic_names(settings.topic_prefix)
        create_topics(bootstrap, topics.all(), settings.kafka_partitions, settings.kafka_replication_factor)
        try:
            figures = bench_sdk(settings, n, Path(spool))
            figures.update(bench_http(settings, http_n, batch_size, clients))
        finally:
            clean_up(settings, database=False)
        print(f"SDK  : {n:,} predictions into Kafka (acks=all, idempotent, zstd)")
        print(f"  delivered              : {figures['sdk_events_per_s']:>10,.0f} events/s")
        print(f"  log_prediction calls   : {figures['sdk_log_calls_per_s']:>10,.0f} calls/s")
        print(f"  CPU, all threads       : {figures['sdk_cpu_us_per_event']:>10.2f} us/event")
        print(f"HTTP : {http_n:,} predictions, batches of {batch_size}, {clients} clients, validated + acked")
        print(f"  accepted               : {figures['http_events_per_s']:>10,.0f} events/s")
        print(f"  CPU, server + clients  : {figures['http_cpu_us_per_event']:>10.2f} us/event")
    print(
        f"(machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: figures fall with load)"
    )
    print(json.dumps(figures))
    return figures
