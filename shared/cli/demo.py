"""``driftloop demo``: start the stack, push a stream of predictions through the monitor, show what arrived."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from typing import Any

import typer

from shared.settings import Settings


async def _publish(settings: Settings, events: list[Any]) -> float:
    from aiokafka import AIOKafkaProducer

    from shared import wire
    from shared.topics import topic_names

    topic = topic_names(settings.topic_prefix).predictions
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    start = time.perf_counter()
    try:
        for e in events:
            await producer.send(topic, wire.encode(e), key=e.model_name.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - start


def _stream(n: int, seed: int) -> list[Any]:
    from shared import wire

    rng = random.Random(seed)
    models = ["churn", "fraud", "credit-limit"]
    events = []
    for i in range(n):
        model = models[i % len(models)]
        p = rng.random()
        events.append(
            wire.PredictionWire(
                model_name=model,
                model_version="1",
                prediction_id=f"{model}-{i}",
                features={
                    "age": round(rng.gauss(40, 12), 1),
                    "income": round(rng.lognormvariate(10, 0.5), 2),
                    "plan": rng.choice(["free", "pro", "enterprise"]),
                    "tenure_months": None if rng.random() < 0.05 else rng.randint(0, 120),
                },
                prediction=int(p > 0.5),
                probabilities={"0": 1 - p, "1": p},
                latency_ms=round(rng.uniform(0.5, 8.0), 2),
            )
        )
    return events


def demo(
    events: int = typer.Option(3000, help="Prediction events to publish."),
    seed: int = typer.Option(7, help="Random seed of the simulated stream."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the rows to arrive."),
) -> None:
    """Run the pipeline on a simulated production stream and print what arrived in ClickHouse."""
    from shared.infra.process import InfraError

    settings = Settings()
    try:
        _run_demo(settings, events, seed, timeout)
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _arrived(client: Any, ids: list[str]) -> int:
    """How many of ``ids`` the monitor has stored; 0 while its table does not exist yet."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    try:
        return int(
            client.command(
                "SELECT count() FROM predictions FINAL WHERE event_id IN {ids:Array(UUID)}",
                parameters={"ids": ids},
            )
        )
    except DatabaseError as exc:
        if "UNKNOWN_TABLE" in str(exc) or "Code: 60." in str(exc):
            return 0
        raise


def _run_demo(settings: Settings, events: int, seed: int, timeout: float) -> None:
    from shared.clickhouse import clickhouse_client
    from shared.infra.process import free_port, spawn
    from shared.infra.stack import local_stack

    with local_stack(settings) as stack:
        for status in stack.status():
            typer.echo(status.line())
        worker = spawn(
            "monitor",
            [sys.executable, "-m", "services.monitor", "--web-port", str(free_port())],
            settings.data_dir / "logs" / "demo-monitor.log",
        )
        try:
            stream = _stream(events, seed)
            elapsed = asyncio.run(_publish(settings, stream))
            typer.echo(f"published {len(stream):,} prediction events in {elapsed:.2f}s")
            client = clickhouse_client(settings)
            ids = [str(e.event_id) for e in stream]
            deadline = time.monotonic() + timeout
            arrived = 0
            while time.monotonic() < deadline:
                arrived = _arrived(client, ids)
                typer.echo(f"  arrived in ClickHouse: {arrived:,}/{len(stream):,}")
                if arrived >= len(stream):
                    break
                time.sleep(1.0)
            result = client.query(
                "SELECT model_name, count() AS events, round(avg(num_features['age']), 1) AS avg_age, "
                "round(quantile(0.99)(latency_ms), 2) AS p99_latency_ms "
                "FROM predictions FINAL WHERE event_id IN {ids:Array(UUID)} GROUP BY model_name ORDER BY model_name",
                parameters={"ids": ids},
            )
            typer.echo("model            events   avg_age  p99_latency_ms")
            for name, count, avg_age, p99 in result.result_rows:
                typer.echo(f"{name:<16} {count:>6}   {avg_age:>7}  {p99:>14}")
            if arrived < len(stream):
                typer.echo(f"only {arrived} of {len(stream)} events arrived; see {worker.log_path}", err=True)
                raise typer.Exit(1)
        finally:
            worker.stop()
