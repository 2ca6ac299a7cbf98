"""``driftloop train MODEL``: ask the trainer for a new version now (a ``RetrainModel`` on ``training-runs``).

The command only sends the command event; the trainer worker (``python -m services.trainer``) debounces
and runs it like a drift trigger. With ``--wait`` it follows ``training-runs`` until the run ends and
prints its outcome (exit 1 when it failed or was rejected).
"""

from __future__ import annotations

import asyncio
import logging
import time

import typer

from driftloop.cli.errors import exit_unreachable
from shared.codec import decode_any, encode
from shared.events import (
    Event,
    RetrainModel,
    TrainingRunFailed,
    TrainingRunFinished,
    TrainingRunRejected,
    TrainingRunStarted,
)
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.clients import producer as kafka_producer
from shared.settings import Settings
from shared.topics import topic_names

KAFKA_HINT = "start it with `driftloop up`, or check DRIFTLOOP_KAFKA_BOOTSTRAP"
ENDED = (TrainingRunFinished, TrainingRunFailed, TrainingRunRejected)


def train(
    model: str = typer.Argument(..., help="Name of the registered model to retrain."),
    wait: bool = typer.Option(False, "--wait", help="Follow the run and print how it ended."),
    timeout: float = typer.Option(1800.0, help="Seconds --wait waits for the run to end."),
    requested_by: str = typer.Option("cli", help="Who asked, kept with the command."),
) -> None:
    """Retrain MODEL now; the trainer registers the result as 'candidate' and promotes it if it is better."""
    settings = Settings()
    command = RetrainModel(model_name=model, reason="manual", requested_by=requested_by)
    from aiokafka.errors import KafkaError

    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # the client's connection errors: our one line says it better
    try:
        ended = asyncio.run(_send_and_follow(settings, command, wait, timeout))
    except (OSError, KafkaError) as exc:
        exit_unreachable("Kafka broker", settings.kafka_bootstrap, exc, KAFKA_HINT)
    finally:
        client_log.setLevel(level)
    typer.echo(f"asked the trainer to retrain {model!r} (command {command.event_id})")
    if not wait:
        return
    if ended is None:
        typer.echo(f"no outcome within {timeout:.0f}s; is the trainer running (python -m services.trainer)?")
        raise typer.Exit(1)
    typer.echo(describe(ended))
    if not isinstance(ended, TrainingRunFinished):
        raise typer.Exit(1)


def describe(event: Event) -> str:
    """One line saying how a run ended."""
    if isinstance(event, TrainingRunFinished):
        champion = "none" if event.champion_score is None else f"{event.champion_score:.4f}"
        verdict = "promoted to production" if event.promoted else "kept as candidate"
        if event.gate:
            verdict += f" ({event.gate.split(': ', 1)[-1]})"
        return (
            f"version {event.model_version}: {event.metric} {event.challenger_score:.4f} "
            f"(champion {champion}), {verdict}, in {event.duration_s:.1f}s"
        )
    if isinstance(event, TrainingRunRejected):
        return "rejected, the training data failed validation:\n  - " + "\n  - ".join(event.problems)
    if isinstance(event, TrainingRunFailed):
        return f"failed: {event.error}"
    return event.event_type


async def _send_and_follow(
    settings: Settings, command: RetrainModel, wait: bool, timeout: float
) -> Event | None:

    topic = topic_names(settings.topic_prefix).training_runs
    consumer = None
    if wait:  # subscribe before sending, at the end of the topic, so the outcome cannot be missed
        consumer = kafka_consumer(
            settings, topic, group_id=f"driftloop-train-cli-{command.event_id}", auto_offset_reset="latest"
        )
        try:
            await consumer.start()
            deadline = time.monotonic() + 60
            while not consumer.assignment() and time.monotonic() < deadline:
                await consumer.getmany(timeout_ms=200)  # joins the group; nothing is there yet to read
            for tp in consumer.assignment():
                await consumer.position(tp)  # pin the end now, before the command is sent
        except BaseException:
            await consumer.stop()
            raise
    producer = kafka_producer(settings)
    try:
        await producer.start()
        await producer.send_and_wait(topic, encode(command), key=command.key)
    except BaseException:
        if consumer is not None:
            await consumer.stop()
        raise
    finally:
        await producer.stop()
    if consumer is None:
        return None
    run_ids: set[object] = set()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for messages in batches.values():
                for message in messages:
                    try:
                        event = decode_any(message.value or b"{}")
                    except ValueError:  # not ours to judge here; the trainer logs undecodable input
                        continue
                    if isinstance(event, TrainingRunStarted) and event.trigger_event_id == command.event_id:
                        run_ids.add(event.run_id)
                    elif isinstance(event, ENDED) and event.run_id in run_ids:
                        return event
    finally:
        await consumer.stop()
    return None
