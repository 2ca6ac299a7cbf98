"""The local stack: start the servers Driftloop needs (Kafka, ClickHouse, S3) that are not running yet.

Which servers are local comes from the settings: a loopback address means "Driftloop runs it", anything else
is an external server that is only probed, never started. Started servers are recorded in
``<data_dir>/stack.json`` so ``driftloop infra down`` in another shell can stop them.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from driftloop.infra.progress import Progress
from driftloop.process import InfraError, ManagedProcess, ensure_port_free, pid_alive, port_open
from shared.settings import Settings
from shared.topics import topic_names


class Component(StrEnum):
    """The servers of the stack, in start order."""

    KAFKA = "kafka"
    CLICKHOUSE = "clickhouse"
    S3 = "s3"


@dataclass(frozen=True)
class Endpoint:
    """Where a component listens according to the settings, and whether Driftloop runs it."""

    component: Component
    host: str
    port: int
    address: str
    local: bool
    extra_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class ComponentStatus:
    """One line of ``infra up``/``status``: a component, where it listens and what happened to it."""

    component: Component
    address: str
    up: bool
    note: str
    pid: int | None = None
    log_path: Path | None = None

    def line(self) -> str:
        return status_line(self.component.value, self.up, self.address, self.note, self.pid, self.log_path)


def status_line(
    name: str, up: bool, address: str, note: str, pid: int | None = None, log_path: Path | None = None
) -> str:
    """One aligned line of a status table, shared by the servers (``infra``) and the services (``up``)."""
    parts = [f"{name:<11}{'up' if up else 'down':<5} {address:<46}", note]
    if pid is not None:
        parts.append(f"pid {pid}")
    if log_path is not None:
        parts.append(f"log {log_path}")
    return "  ".join(parts)


@dataclass
class Record:
    """What ``stack.json`` keeps about a server Driftloop started, enough to find and stop it later."""

    pid: int
    host: str
    port: int
    address: str
    log_path: str
    start_ticks: int | None = None
    started_at: float = field(default_factory=time.time)


class ProcessRecords:
    """A JSON file of the processes Driftloop started from one data dir, one section per kind, written
    atomically so ``down`` or ``status`` in another shell always reads a whole file.

    ``stack.json`` (section ``components``) holds the servers, ``services.json`` (``services``) the services.
    """

    def __init__(self, path: Path, section: str = "components") -> None:
        self.path = path
        self.section = section

    def load(self) -> dict[str, Record]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {str(name): Record(**rec) for name, rec in raw.get(self.section, {}).items()}
        except (ValueError, TypeError) as exc:
            raise InfraError(
                f"{self.path} is not a Driftloop {self.section} file ({exc}); remove it"
            ) from exc

    def save(self, records: Mapping[str, Record]) -> None:
        if not records:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {self.section: {str(n): asdict(r) for n, r in sorted(records.items())}}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        tmp.replace(self.path)

    def put(self, name: str, record: Record) -> None:
        self.save({**self.load(), name: record})

    def drop(self, name: str) -> None:
        records = self.load()
        if records.pop(name, None) is not None:
            self.save(records)

    def live(self, name: str) -> Record | None:
        """The record of ``name`` if its process still runs; a dead or killed one is forgotten."""
        record = self.load().get(name)
        if record is not None and not process_running(record.pid, record.start_ticks):
            self.drop(name)
            return None
        return record


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """One ``up``/``down`` per data dir at a time, so two shells never both start the same process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def try_locked(path: Path) -> Iterator[bool]:
    """Like :func:`locked` but never waits: yields False when an ``up``/``down`` holds the lock now."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """Process state letter and start time (clock ticks) from /proc, or None off Linux / when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def process_running(pid: int, start_ticks: int | None = None) -> bool:
    """True when ``pid`` runs and is the process we recorded (zombies and reused pids count as gone)."""
    stat = _proc_stat(pid)
    if stat is None:
        return pid_alive(pid) and not Path("/proc").is_dir()
    state, ticks = stat
    if state in ("Z", "X"):
        return False
    return start_ticks is None or ticks == start_ticks


def stop_recorded(record: Record, timeout: float = 30.0) -> None:
    """SIGTERM the recorded process group, SIGKILL after ``timeout``; for servers another shell started.

    Unlike ``process.stop_pid`` this counts an unreaped zombie as stopped: the starting shell is gone and
    the process's new parent may never reap it.
    """
    if not process_running(record.pid, record.start_ticks):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(record.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process_running(record.pid, record.start_ticks):
                return
            time.sleep(0.1)
    raise InfraError(f"process {record.pid} did not stop even after SIGKILL")


class LocalStack:
    """Starts, probes and stops the stack described by one ``Settings``; one instance per command."""

    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.state = ProcessRecords(self.data_dir / "stack.json")
        self.started: dict[Component, ManagedProcess] = {}
        self.progress = progress  # told what a start waits for (a server booting, a first jar download)

    def endpoint(self, component: Component) -> Endpoint:
        s = self.settings
        if component is Component.KAFKA:
            host, port = s.kafka_host_port
            address = f"{s.kafka_bootstrap} (controller {host}:{s.kafka_controller_port})"
            return Endpoint(component, host, port, address, s.kafka_is_local, (s.kafka_controller_port,))
        if component is Component.CLICKHOUSE:
            host, port = s.clickhouse_host_port
            return Endpoint(component, host, port, s.clickhouse_url, s.clickhouse_is_local)
        host, port = s.s3_host_port
        return Endpoint(component, host, port, s.s3_endpoint_url, s.s3_is_local)

    def log_path(self, component: Component) -> Path:
        return self.data_dir / "logs" / f"{component.value}.log"

    def probe(self, component: Component) -> ComponentStatus:
        """Where ``component`` listens and whether it answers, without starting anything."""
        ep = self.endpoint(component)
        listening = port_open(ep.host, ep.port)
        if not ep.local:
            return ComponentStatus(
                component, ep.address, listening, "external" if listening else "unreachable"
            )
        # a dead server's record is kept: it stays wanted, so the supervisor of `driftloop up` restarts it
        record = self.state.load().get(component)
        if record is not None and not process_running(record.pid, record.start_ticks):
            note = f"process {record.pid} exited; see its log"
            return ComponentStatus(component, ep.address, listening, note, log_path=Path(record.log_path))
        if record is None:
            note = "listening, not started by driftloop" if listening else "not running"
            return ComponentStatus(component, ep.address, listening, note, log_path=self.log_path(component))
        if (record.host, record.port) != (ep.host, ep.port):
            up = port_open(record.host, record.port)
            note = f"running at {record.address}, not at the configured address"
            return ComponentStatus(component, ep.address, up, note, record.pid, Path(record.log_path))
        note = "running" if listening else "process alive but not listening yet; see its log"
        return ComponentStatus(component, ep.address, listening, note, record.pid, Path(record.log_path))

    def status(self, components: Iterable[Component] = tuple(Component)) -> list[ComponentStatus]:
        return [self.probe(c) for c in components]

    def up(
        self, components: Iterable[Component], report: Callable[[ComponentStatus], None] | None = None
    ) -> list[ComponentStatus]:
        """Start each local component that is not running yet; probe external ones. Ready on return.

        Creates the canonical topics once Kafka answers. ``report`` sees each status as soon as it is known
        (the CLI prints progress). Raises InfraError when a local server cannot start (port taken by someone
        else, missing tool, crash during start-up); servers started before that keep running.
        """
        statuses = []
        with locked(self.data_dir / "stack.lock"):
            for component in sorted(set(components), key=list(Component).index):
                statuses.append(self._up_one(component))
                if report is not None:
                    report(statuses[-1])
        return statuses

    def _up_one(self, component: Component) -> ComponentStatus:
        ep = self.endpoint(component)
        if not ep.local:
            status = self.probe(component)
        elif (record := self.state.live(component)) is not None:
            if (record.host, record.port) != (ep.host, ep.port):
                raise InfraError(
                    f"{component.value} from {self.data_dir} already runs at {record.address}, not at the "
                    f"configured {ep.address}; run `driftloop infra down` first"
                )
            status = ComponentStatus(
                component, ep.address, True, "already running", record.pid, Path(record.log_path)
            )
        else:
            for port in (ep.port, *ep.extra_ports):
                ensure_port_free(component.value, ep.host, port)
            began = time.monotonic()
            if self.progress is not None:
                self.progress(f"starting {component.value} at {ep.address}")
            managed = self._start(component, ep)
            self.started[component] = managed
            stat = _proc_stat(managed.pid)
            ticks = stat[1] if stat else None
            record = Record(managed.pid, ep.host, ep.port, ep.address, str(managed.log_path), ticks)
            self.state.put(component, record)
            note = f"started in {time.monotonic() - began:.1f}s"
            status = ComponentStatus(component, ep.address, True, note, managed.pid, managed.log_path)
        if component is Component.KAFKA and status.up:
            self.create_topics()
        return status

    def _start(self, component: Component, ep: Endpoint) -> ManagedProcess:
        s = self.settings
        data = self.data_dir / component.value
        log = self.log_path(component)
        if component is Component.KAFKA:
            from driftloop.infra.kafka import start_kafka

            return start_kafka(
                ep.host, ep.port, s.kafka_controller_port, data, log, s, progress=self.progress
            )
        if component is Component.CLICKHOUSE:
            try:
                from driftloop.clickhouse_server import start_clickhouse_server
            except ImportError as exc:
                raise InfraError(f"cannot start the embedded ClickHouse server: {exc}") from exc
            return start_clickhouse_server(
                ep.host,
                ep.port,
                data,
                log,
                user=s.clickhouse_user,
                password=s.clickhouse_password.get_secret_value(),
            )
        try:
            from driftloop.infra.s3_server import start_s3_server
        except ImportError as exc:
            raise InfraError(f"cannot start the local S3 server: {exc}") from exc
        return start_s3_server(
            ep.host,
            ep.port,
            data,
            log,
            s.s3_access_key_id,
            s.s3_secret_access_key.get_secret_value(),
            cache_dir=s.cache_dir,
            progress=self.progress,
        )

    def create_topics(self) -> list[str]:
        """Create Driftloop's topics (with ``topic_prefix``) where missing; returns the ones created."""
        from shared.kafka.admin import KafkaAdminError, create_topics

        s = self.settings
        names = topic_names(s.topic_prefix).all()
        try:
            return create_topics(s.kafka_bootstrap, names, s.kafka_partitions, s.kafka_replication_factor)
        except KafkaAdminError as exc:
            raise InfraError(str(exc)) from exc

    def down(self, components: Iterable[Component] = tuple(Component)) -> list[ComponentStatus]:
        """Stop the recorded servers among ``components`` (reverse start order); external ones are left."""
        statuses = []
        with locked(self.data_dir / "stack.lock"):
            for component in sorted(set(components), key=list(Component).index, reverse=True):
                ep = self.endpoint(component)
                record = self.state.load().get(component)
                if not ep.local:
                    note = "external, left alone"
                elif record is None:
                    note = "not started by driftloop" if port_open(ep.host, ep.port) else "not running"
                else:
                    managed = self.started.pop(component, None)
                    if managed is not None:
                        managed.stop(timeout=30)  # our child: stop() also reaps it
                    else:
                        stop_recorded(record)
                    self.state.drop(component)
                    note = f"stopped (pid {record.pid})"
                statuses.append(ComponentStatus(component, ep.address, port_open(ep.host, ep.port), note))
        return statuses


def default_components(s3: bool = False) -> list[Component]:
    """What a command needs: Kafka and ClickHouse always, the S3 server only when artifacts go to S3."""
    return [Component.KAFKA, Component.CLICKHOUSE, *([Component.S3] if s3 else [])]


@contextmanager
def local_stack(
    settings: Settings, s3: bool = False, components: Iterable[Component] | None = None
) -> Iterator[LocalStack]:
    """Run a block with the stack ready: starts what is missing and on exit stops only what it started.

    Servers already running (``driftloop infra up``) or external ones are used as they are and left alone.
    Raises InfraError when a component is not reachable, so commands fail before doing any work.
    """
    stack = LocalStack(settings)
    s3 = s3 or settings.resolved_artifact_root.startswith("s3://")  # artifacts on S3 need the S3 server
    try:
        statuses = stack.up(components if components is not None else default_components(s3))
        down = [st for st in statuses if not st.up]
        if down:
            raise InfraError("; ".join(f"{st.component.value} at {st.address} is {st.note}" for st in down))
        yield stack
    finally:
        if stack.started:
            stack.down(list(stack.started))
