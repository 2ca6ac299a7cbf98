"""The demo's own Driftloop system: the same infrastructure and service processes as ``driftloop up``.

The demo never touches a system the user already runs: it gets a data folder of its own, free ports for
every server and service, and settings paced for a few minutes of traffic (short event-time windows, a
short label wait, a short trainer debounce). The settings reach every child process as ``DRIFTLOOP_*``
variables (``Settings.as_env``); whatever this module started it stops again, also on Ctrl-C or a failure.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from driftloop.infra.services import ServiceStatus, Supervisor, service_table
from driftloop.infra.stack import ComponentStatus, LocalStack, default_components
from driftloop.process import InfraError, free_port
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names


@dataclass(frozen=True)
class Pace:
    """How fast the loop reacts: event-time window length, lateness, label wait, trainer debounce."""

    window_seconds: int = 12
    lateness_seconds: int = 1
    label_wait_seconds: int = 5
    trainer_debounce_seconds: float = 1.0


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports (two calls of free_port may return the same one)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def demo_settings(base: Settings, data_dir: Path, model_name: str, pace: Pace) -> Settings:
    """``base`` with a private data folder, free local ports and the demo's pace.

    The cache folder (the Kafka jars) is kept, so the broker starts without resolving anything again.
    """
    ports = distinct_free_ports(10)
    kafka, controller, clickhouse, registry, ingest, monitor, serving, trainer, advisor, console = ports
    return base.model_copy(
        update={
            "data_dir": data_dir,
            "kafka_bootstrap": f"127.0.0.1:{kafka}",
            "kafka_controller_port": controller,
            "kafka_partitions": 1,
            "topic_prefix": "",
            "clickhouse_url": f"http://127.0.0.1:{clickhouse}",
            "clickhouse_database": "driftloop",
            "artifact_root": "",
            "registry_url": f"http://127.0.0.1:{registry}",
            "registry_database_url": "",
            "registry_allow_anonymous_writes": True,
            "registry_relay_interval": 0.1,
            "ingest_host": "127.0.0.1",
            "ingest_port": ingest,
            "ingest_quality_interval_s": 10.0,
            "monitor_web_port": monitor,
            "trainer_web_port": trainer,
            "advisor_web_port": advisor,
            "console_port": console,
            "console_refresh_seconds": 2.0,
            "monitor_window_seconds": pace.window_seconds,
            "monitor_allowed_lateness_seconds": pace.lateness_seconds,
            "monitor_label_wait_seconds": pace.label_wait_seconds,
            "monitor_batch_seconds": 0.5,
            "trainer_debounce_seconds": pace.trainer_debounce_seconds,
            "serving_port": serving,
            "serving_model": model_name,
            "serving_alias": "production",
        }
    )


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment for the block (child processes inherit them)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """One demo per data folder at a time; a second one fails at once instead of killing the first."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir.parent / f"{data_dir.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise InfraError(
                f"another `driftloop demo` is running in {data_dir}; wait for it to end"
            ) from exc
        yield


def fresh_data_dir(settings: Settings) -> None:
    """Stop what an interrupted earlier demo left running in the data folder, then empty it."""
    data_dir = settings.data_dir.resolve()
    if not data_dir.exists():
        return
    Supervisor(settings, service_table(settings)).down(timeout=10)
    LocalStack(settings).down()
    shutil.rmtree(data_dir)


@dataclass(frozen=True)
class RunningSystem:
    """Where the started system listens and where its logs are."""

    settings: Settings
    serving_url: str
    logs_dir: Path


@contextmanager
def running_system(
    settings: Settings,
    *,
    start_infra: bool = True,
    report: Callable[[ServiceStatus | ComponentStatus], None] | None = None,
) -> Iterator[RunningSystem]:
    """Kafka and ClickHouse (unless ``start_infra`` is false: they already run at the settings' addresses),
    then registry, ingest, monitor, trainer and a model server of ``settings.serving_model``, each healthy
    before the next; all stopped on exit, services first so they flush what they hold."""
    stack = LocalStack(settings)
    supervisor = Supervisor(settings, service_table(settings), start_timeout=settings.service_start_timeout_s)
    with environment(settings.as_env()):
        try:
            if start_infra:
                statuses = stack.up(default_components(), report=report)
                down = [s for s in statuses if not s.up]
                if down:
                    raise InfraError("; ".join(f"{s.component.value} is {s.note}" for s in down))
            create_topics(
                settings.kafka_bootstrap,
                list(topic_names(settings.topic_prefix).all()),
                settings.kafka_partitions,
                settings.kafka_replication_factor,
            )
            supervisor.up(report=report)
            yield RunningSystem(
                settings=settings,
                serving_url=f"http://127.0.0.1:{settings.serving_port}",
                logs_dir=settings.data_dir.resolve() / "logs",
            )
        finally:
            try:
                supervisor.down(timeout=20)
            finally:
                if stack.started:
                    stack.down(list(stack.started))
