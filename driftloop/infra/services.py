"""Driftloop's services as background processes: which ones, in what order, how to tell they are healthy.

The table (:func:`service_table`) is plain data computed from the settings; :class:`Supervisor` is the thin
adapter that spawns, probes and stops them. Started services are recorded in ``<data_dir>/services.json``
(the same records as ``stack.json``), so ``driftloop down`` or ``status`` in another shell finds them. A
record stays until ``down`` removes it, also when its process died: recorded means wanted, and the
restarting supervisor process (``driftloop.infra.supervisor``) starts a wanted service that is gone.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from driftloop.infra.progress import Progress
from driftloop.infra.stack import (
    Component,
    ProcessRecords,
    Record,
    _proc_stat,
    locked,
    process_running,
    status_line,
    stop_recorded,
)
from driftloop.process import InfraError, ManagedProcess, ensure_port_free, spawn, wait_until
from shared.settings import LOCAL_SERVICE_PRINCIPALS, Settings, is_loopback


def ensure_local_token(settings: Settings) -> bool:
    """Write the local admin token (``<data_dir>/local-token``, mode 0600, random) if it is absent, so the
    CLI, trainer, monitor and model server can write to a loopback registry without configuration, and
    one token per service that writes on its own behalf (``local-token.trainer``, a writer), so the audit
    log names the trainer for its promotions, not the user.

    Returns True when a token was written. Nothing is written for a registry on another machine, which
    needs explicit ``DRIFTLOOP_REGISTRY_TOKENS``. The tokens themselves are never logged or printed.
    """
    if not is_loopback(urlsplit(settings.registry_url).hostname or ""):
        return False
    paths = [settings.local_token_path]
    paths += [settings.local_service_token_path(service) for service in LOCAL_SERVICE_PRINCIPALS]
    written = [_write_token(path) for path in paths]
    return any(written)


def _write_token(path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # a copied data folder may have widened it: only its owner may read it
        return False
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return True


class Health(StrEnum):
    """How a service shows it is ready: an HTTP 200 on a path, any HTTP answer, or a process that stays up."""

    HTTP = "http"
    LISTENING = "listening"
    PROCESS = "process"


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its entry module and arguments, where it listens, and the infrastructure it needs."""

    name: str
    module: str
    args: tuple[str, ...]
    host: str | None
    port: int | None
    health: Health
    health_path: str = "/"
    needs: tuple[Component, ...] = ()
    installed: bool = True
    external: bool = False  # runs on another machine (the settings name a remote host): only probed

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}" if self.port is not None else "(no port)"

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]


def module_installed(module: str) -> bool:
    """True when ``python -m module`` can run (the trainer may not exist in every checkout)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def service_table(settings: Settings, serving_model: str | None = None) -> list[ServiceSpec]:
    """Every service of one machine, in start order (each needs only those before it and the infrastructure)."""
    infra = (Component.KAFKA, Component.CLICKHOUSE)
    s3 = (Component.S3,) if settings.resolved_artifact_root.startswith("s3://") else ()
    registry = urlsplit(settings.registry_url)
    monitor_port = settings.monitor_web_port
    serving_port = settings.serving_port
    model = serving_model or settings.serving_model
    alias = settings.serving_alias
    return [
        ServiceSpec(
            "registry",
            "services.registry",
            (),
            registry.hostname or "127.0.0.1",
            registry.port or (443 if registry.scheme == "https" else 80),
            Health.HTTP,
            "/healthz",
            (Component.KAFKA, *s3),
            external=not is_loopback(registry.hostname or ""),
        ),
        ServiceSpec(
            "ingest",
            "services.ingest",
            (),
            settings.ingest_host,
            settings.ingest_port,
            Health.HTTP,
            "/healthz",
            (Component.KAFKA,),
        ),
        ServiceSpec(
            "monitor",
            "services.monitor",
            ("--web-port", str(monitor_port)),
            "127.0.0.1",
            monitor_port,
            Health.HTTP,
            "/health",
            infra,
        ),
        ServiceSpec(
            "trainer",
            "services.trainer",
            ("--web-port", str(settings.trainer_web_port)),
            "127.0.0.1",
            settings.trainer_web_port,
            Health.HTTP,
            "/health",
            needs=(*infra, *s3),
            installed=module_installed("services.trainer.__main__"),
        ),
        # 503 on /healthz until a model is registered under the alias: listening is enough to be "up"
        ServiceSpec(
            "serving",
            "services.serving",
            ("--model", model, "--alias", alias, "--port", str(serving_port)),
            "127.0.0.1",
            serving_port,
            Health.LISTENING,
            "/healthz",
            (Component.KAFKA,),
        ),
        # sizes the monitor from its lag and busy time, and ClickHouse from its parts (docs/adr/0007)
        ServiceSpec(
            "advisor",
            "services.advisor",
            ("--web-port", str(settings.advisor_web_port)),
            "127.0.0.1",
            settings.advisor_web_port,
            Health.HTTP,
            "/health",
            infra,
        ),
        # the web console: reads the registry (as each viewer) and ClickHouse (docs/adr/0008)
        ServiceSpec(
            "console",
            "services.console",
            ("--port", str(settings.console_port)),
            settings.console_host,
            settings.console_port,
            Health.HTTP,
            "/health",
            (Component.CLICKHOUSE,),
        ),
    ]


def dependents(
    table: Sequence[ServiceSpec], running: Iterable[str], components: Iterable[Component]
) -> dict[Component, list[str]]:
    """Which of the ``running`` services need each of ``components``: what stopping them would break.

    >>> table = service_table(Settings())
    >>> dependents(table, ["registry", "monitor"], [Component.CLICKHOUSE, Component.KAFKA])
    {<Component.CLICKHOUSE: 'clickhouse'>: ['monitor'], <Component.KAFKA: 'kafka'>: ['registry', 'monitor']}
    """
    names = set(running)
    found = {c: [s.name for s in table if s.name in names and c in s.needs] for c in components}
    return {c: services for c, services in found.items() if services}


def log_tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a log file (all of it for ``lines <= 0``); empty when there is none."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace").splitlines()
    return text if lines <= 0 else text[-lines:]


def log_tail_note(path: Path, lines: int = 20) -> str:
    tail = log_tail(path, lines)
    return f"; see {path}:\n" + "\n".join(tail) if tail else f"; see {path}"


def find_service(table: Sequence[ServiceSpec], name: str) -> ServiceSpec:
    for spec in table:
        if spec.name == name:
            return spec
    raise InfraError(f"unknown service {name!r}; choose one of {', '.join(s.name for s in table)}")


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status ``url`` answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def healthy(spec: ServiceSpec, pid_alive: Callable[[], bool]) -> bool:
    """Whether ``spec`` answers its health check now."""
    if spec.health is Health.PROCESS or spec.port is None:
        return pid_alive()
    code = http_status(f"{spec.address}{spec.health_path}")
    return code == 200 if spec.health is Health.HTTP else code is not None


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``driftloop up``/``status``: a service, where it listens, its pid and its log."""

    name: str
    address: str
    up: bool
    note: str
    pid: int | None = None
    log_path: Path | None = None

    def line(self) -> str:
        return status_line(self.name, self.up, self.address, self.note, self.pid, self.log_path)


class Supervisor:
    """Starts, probes and stops the services of one data dir as background processes; one per command."""

    def __init__(
        self,
        settings: Settings,
        table: Sequence[ServiceSpec],
        start_timeout: float = 120.0,
        progress: Progress | None = None,
    ) -> None:
        self.progress = progress  # told which service a start waits for
        self.settings = settings
        self.table = list(table)
        self.data_dir = settings.data_dir.resolve()
        self.state = ProcessRecords(self.data_dir / "services.json", section="services")
        self.start_timeout = start_timeout
        self.started: dict[str, ManagedProcess] = {}

    def log_path(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def probe(self, spec: ServiceSpec) -> ServiceStatus:
        """Where ``spec`` listens and whether it is healthy, without starting anything."""
        if not spec.installed:
            return ServiceStatus(spec.name, spec.address, False, "not installed")
        if spec.external:
            return self._probe_external(spec)
        # a dead service's record is kept: it stays wanted, so the supervisor of `driftloop up` restarts it
        record = self.state.load().get(spec.name)
        log = self.log_path(spec.name)
        if record is not None and not process_running(record.pid, record.start_ticks):
            return ServiceStatus(spec.name, spec.address, False, f"process {record.pid} exited", log_path=log)
        if record is None:  # e.g. `driftloop run` in another shell, or another program on its port
            code = None if spec.port is None else http_status(f"{spec.address}{spec.health_path}")
            note = "not running" if code is None else "answering, not started by `driftloop up`"
            return ServiceStatus(spec.name, spec.address, code == 200, note, log_path=log)
        ok = healthy(spec, lambda: process_running(record.pid, record.start_ticks))
        note = "running" if ok else "process alive but not healthy; see its log"
        return ServiceStatus(spec.name, spec.address, ok, note, record.pid, Path(record.log_path))

    @staticmethod
    def _probe_external(spec: ServiceSpec) -> ServiceStatus:
        code = http_status(f"{spec.address}{spec.health_path}")
        note = "external" if code == 200 else "external, not answering"
        return ServiceStatus(spec.name, spec.address, code == 200, note)

    def status(self) -> list[ServiceStatus]:
        return [self.probe(spec) for spec in self.table]

    def up(self, report: Callable[[ServiceStatus], None] | None = None) -> list[ServiceStatus]:
        """Start every installed service not running yet, in order, each healthy before the next starts.

        Raises InfraError naming the service and showing its log tail when one fails; the services this
        call started are stopped again first (also on Ctrl-C), those that were already running are left alone.
        """
        statuses = []
        with locked(self.data_dir / "services.lock"):
            try:
                for spec in self.table:
                    statuses.append(self._up_one(spec))
                    if report is not None:
                        report(statuses[-1])
            except BaseException:  # a failed service or Ctrl-C: leave nothing of this call running
                self._stop_started()
                raise
        return statuses

    def _up_one(self, spec: ServiceSpec) -> ServiceStatus:
        if not spec.installed:
            return ServiceStatus(spec.name, spec.address, False, "not installed, skipped")
        if spec.external:
            return self._probe_external(spec)
        if (record := self.state.live(spec.name)) is not None:
            return ServiceStatus(
                spec.name, spec.address, True, "already running", record.pid, Path(record.log_path)
            )
        try:
            began = time.monotonic()
            if self.progress is not None:
                self.progress(f"starting {spec.name} at {spec.address}")
            managed = self.spawn(spec)
            if spec.health is Health.PROCESS:
                # no port to ask: a process that is still up after a short settling time has started
                time.sleep(2.0)
                if managed.proc.poll() is not None:
                    raise InfraError(
                        f"{spec.name} exited with code {managed.proc.returncode} while starting"
                        f"{log_tail_note(managed.log_path)}"
                    )
            else:
                wait_until(
                    lambda: healthy(spec, lambda: managed.proc.poll() is None),
                    timeout=self.start_timeout,
                    what=spec.name,
                    proc=managed.proc,
                    log_path=managed.log_path,
                    interval=0.25,
                )
        except InfraError as exc:
            raise InfraError(f"service {spec.name} failed to start: {exc}") from exc
        note = f"started in {time.monotonic() - began:.1f}s"
        if spec.health is Health.LISTENING and http_status(f"{spec.address}{spec.health_path}") != 200:
            note += ", waiting for a model to serve"
        return ServiceStatus(spec.name, spec.address, True, note, managed.pid, managed.log_path)

    def spawn(self, spec: ServiceSpec) -> ManagedProcess:
        """Start ``spec``'s process and record it, without waiting for it to be healthy; hold the lock."""
        if spec.host is not None and spec.port is not None:
            ensure_port_free(spec.name, spec.host, spec.port)
        managed = spawn(spec.name, spec.argv, self.log_path(spec.name))
        self.started[spec.name] = managed
        stat = _proc_stat(managed.pid)
        record = Record(
            managed.pid,
            spec.host or "",
            spec.port or 0,
            spec.address,
            str(managed.log_path),
            stat[1] if stat else None,
        )
        self.state.put(spec.name, record)
        return managed

    def _stop_started(self) -> None:
        for name in reversed(list(self.started)):
            self.started.pop(name).stop(timeout=30)
            self.state.drop(name)

    def down(self, timeout: float = 30.0) -> list[ServiceStatus]:
        """SIGTERM every recorded service (reverse start order) so each flushes what it buffers, then forget it."""
        statuses = []
        with locked(self.data_dir / "services.lock"):
            for spec in reversed(self.table):
                record = self.state.load().get(spec.name)
                if record is None:
                    note = "not installed" if not spec.installed else "not running"
                else:
                    managed = self.started.pop(spec.name, None)
                    if managed is not None:
                        managed.stop(timeout=timeout)
                    else:
                        stop_recorded(record, timeout=timeout)
                    self.state.drop(spec.name)
                    note = f"stopped (pid {record.pid})"
                statuses.append(ServiceStatus(spec.name, spec.address, False, note))
        return statuses
