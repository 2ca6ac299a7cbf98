"""The supervisor `driftloop up` leaves running: it starts the stack and the services as its own children,
then restarts any that exits, with backoff, and records why each one stopped.

``python -m driftloop.infra.supervisor [--model M]`` reports each start on stdout as JSON lines for the
``driftloop up`` that launched it (``{"progress": ...}`` while it waits for something, ``{"line": ...}`` as
each part is ready, then ``{"ready": true}`` or ``{"error": ...}``), then
writes to ``<data_dir>/logs/supervisor.log`` and watches. Restarts and exit reasons are in
``<data_dir>/supervisor.json``, which ``driftloop status`` reads. ``driftloop down`` stops it (SIGTERM) before
the services, and it leaves the services running when it stops, so ``down`` decides what stops.

A service or server is restarted only while it is still recorded (``services.json``, ``stack.json``): a
process that ``driftloop down`` or ``driftloop infra down`` stopped is forgotten there and stays stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from driftloop.infra.services import Supervisor, ensure_local_token, service_table
from driftloop.infra.stack import (
    Component,
    LocalStack,
    ProcessRecords,
    Record,
    _proc_stat,
    default_components,
    locked,
    process_running,
    try_locked,
)
from driftloop.process import InfraError, pid_alive
from shared.settings import Settings

NAME = "supervisor"
STATE_FILE = "supervisor.json"


@dataclass
class Backoff:
    """Seconds to wait before the next restart: ``initial``, doubling to ``maximum`` while a process keeps
    crashing, back to ``initial`` once it has stayed up ``reset_after`` seconds.

    >>> b = Backoff()
    >>> [b.next() for _ in range(7)]
    [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    >>> b.stayed_up(31.0)
    >>> b.next()
    1.0
    """

    initial: float = 1.0
    maximum: float = 30.0
    reset_after: float = 30.0
    _delay: float = 0.0

    def next(self) -> float:
        self._delay = self.initial if self._delay == 0.0 else min(self._delay * 2, self.maximum)
        return self._delay

    def stayed_up(self, seconds: float) -> None:
        if seconds >= self.reset_after:
            self._delay = 0.0


def exit_reason(returncode: int | None) -> str:
    """What a user reads about a process that ended: the signal's name, the exit code, or that it is unknown.

    >>> exit_reason(-9), exit_reason(1), exit_reason(None)
    ('killed by SIGKILL', 'exited with code 1', 'exited (status unknown: not started by this supervisor)')
    """
    if returncode is None:
        return "exited (status unknown: not started by this supervisor)"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class Restarts:
    """What ``supervisor.json`` keeps per process, for ``driftloop status``."""

    restarts: int = 0
    last_exit: str | None = None
    last_exit_at: float | None = None
    last_restart_at: float | None = None
    last_log_lines: list[str] = field(default_factory=list)
    restart_due_at: float | None = None  # wall-clock time of the next restart while waiting for it

    def summary(self) -> str:
        """The part of a status line about restarts; empty for a process that never stopped."""
        if self.last_exit is None:
            return ""
        at = time.strftime("%H:%M:%S", time.localtime(self.last_exit_at or 0))
        text = f"restarts {self.restarts}, last exit: {self.last_exit} at {at}"
        if self.restart_due_at is not None:
            text += f", restarting in {max(0.0, self.restart_due_at - time.time()):.0f}s"
        return text


class SupervisorState:
    """``<data_dir>/supervisor.json``: written only by the supervisor, atomically, read by ``status``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE

    def load(self) -> dict[str, Restarts]:
        try:
            raw = json.loads(self.path.read_text())
            return {str(name): Restarts(**r) for name, r in raw.get("watched", {}).items()}
        except (OSError, ValueError, TypeError):
            return {}

    def save(self, watched: dict[str, Restarts]) -> None:
        payload = {"pid": os.getpid(), "watched": {n: asdict(r) for n, r in sorted(watched.items())}}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Watched:
    """One process the supervisor keeps running: a child (exit status known) or one it found running."""

    name: str
    pid: int
    start_ticks: int | None
    proc: subprocess.Popen[bytes] | None
    log_path: Path
    since: float = field(default_factory=time.monotonic)
    due: float | None = None  # monotonic time of the next restart; None while it runs
    backoff: Backoff = field(default_factory=Backoff)
    restarts: Restarts = field(default_factory=Restarts)

    def returncode(self) -> tuple[bool, int | None]:
        """(still running, exit code when known)."""
        if self.proc is not None and self.proc.pid == self.pid:
            code = self.proc.poll()
            return code is None, code
        return process_running(self.pid, self.start_ticks), None

    def adopt(self, pid: int, start_ticks: int | None, proc: subprocess.Popen[bytes] | None) -> None:
        self.pid, self.start_ticks, self.proc = pid, start_ticks, proc
        self.since, self.due, self.restarts.restart_due_at = time.monotonic(), None, None


def last_lines(path: Path, count: int, window: int = 8192) -> list[str]:
    """The last ``count`` lines of a log, reading only its last ``window`` bytes (logs grow for days)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - window))
            return f.read().decode(errors="replace").splitlines()[-count:]
    except OSError:
        return []


def _kill_leftovers(pgid: int) -> None:
    """Stop what a crashed process left in its group (e.g. workers still holding its port).

    While a member of group ``pgid`` lives the kernel gives no new process that pid, so a group found with
    its leader gone is the crashed process's own; a live process with that pid means the pid was reused.
    """
    if pid_alive(pgid):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(1.0)


class Watcher:
    """The watch loop: polls each process, restarts one that exited once its backoff has passed."""

    def __init__(self, stack: LocalStack, services: Supervisor, log: Callable[[str], None]) -> None:
        self.stack = stack
        self.services = services
        self.state = SupervisorState(services.data_dir)
        self.log = log
        self.watched: dict[str, Watched] = {}
        self.specs = {spec.name: spec for spec in services.table if spec.installed and not spec.external}
        self.components = {c.value: c for c in Component if stack.endpoint(c).local}
        for name in (*self.components, *self.specs):
            self._adopt_recorded(name)
        self.state.save(self._restarts())

    def _records(self, name: str) -> ProcessRecords:
        return self.stack.state if name in self.components else self.services.state

    def _lock(self, name: str) -> Path:
        return self.services.data_dir / ("stack.lock" if name in self.components else "services.lock")

    def _child(self, name: str) -> subprocess.Popen[bytes] | None:
        if name in self.components:
            managed = self.stack.started.get(self.components[name])
        else:
            managed = self.services.started.get(name)
        return managed.proc if managed is not None else None

    def _adopt_recorded(self, name: str) -> bool:
        record = self._records(name).load().get(self.components.get(name, name))
        if record is None or not process_running(record.pid, record.start_ticks):
            return False
        proc = self._child(name)
        if name in self.watched:
            self.watched[name].adopt(record.pid, record.start_ticks, proc)
        else:
            self.watched[name] = Watched(name, record.pid, record.start_ticks, proc, Path(record.log_path))
        return True

    def _restarts(self) -> dict[str, Restarts]:
        return {name: w.restarts for name, w in self.watched.items()}

    def tick(self) -> bool:
        """One pass over every watched process; saves ``supervisor.json`` when something changed.

        Returns False once this supervisor is no longer the recorded one (``down`` ran, another ``up``
        replaced it, the data dir was removed): it has nothing left to look after.
        """
        own = self.services.state.load().get(NAME)
        if own is None or own.pid != os.getpid():
            return False
        changed = False
        for name in (*self.components, *self.specs):
            if name not in self.watched and self._adopt_recorded(name):  # e.g. `infra up` after `infra down`
                self.log(f"watching {name} (pid {self.watched[name].pid}), started by someone else")
                changed = True
        for w in list(self.watched.values()):
            now = time.monotonic()
            if w.due is None:
                running, code = w.returncode()
                if running:
                    w.backoff.stayed_up(now - w.since)
                    continue
                delay = w.backoff.next()
                w.due = now + delay
                r = w.restarts
                r.last_exit, r.last_exit_at = exit_reason(code), time.time()
                r.last_log_lines = last_lines(w.log_path, 5)
                r.restart_due_at = time.time() + delay
                self.log(f"{w.name} (pid {w.pid}) {r.last_exit}; restarting in {delay:.0f}s")
                changed = True
            elif now >= w.due:
                changed |= self._restart(w)
        if changed:
            self.state.save(self._restarts())
        return True

    def _restart(self, w: Watched) -> bool:
        with try_locked(self._lock(w.name)) as got:
            if not got:  # an `up` or `down` is at work: look again at the next tick
                return False
            key = self.components.get(w.name, w.name)
            record = self._records(w.name).load().get(key)
            if record is None:  # stopped by `down` / `infra down`: no longer wanted
                self.log(f"{w.name} is no longer recorded (stopped on purpose); not restarting it")
                del self.watched[w.name]
                return True
            if record.pid != w.pid and self._adopt_recorded(w.name):
                self.log(f"{w.name} was started again by someone else (pid {record.pid}); watching that one")
                return True
            _kill_leftovers(w.pid)
            try:
                pid, proc = self._start(w.name)
            except InfraError as exc:
                delay = w.backoff.next()
                w.due = time.monotonic() + delay
                w.restarts.last_exit = f"could not restart: {str(exc).splitlines()[0]}"
                w.restarts.restart_due_at = time.time() + delay
                self.log(f"{w.name}: {exc}; next try in {delay:.0f}s")
                return True
        stat = _proc_stat(pid)
        w.adopt(pid, stat[1] if stat else None, proc)
        w.restarts.restarts += 1
        w.restarts.last_restart_at = time.time()
        self.log(f"{w.name} restarted (pid {pid}, restart {w.restarts.restarts})")
        return True

    def _start(self, name: str) -> tuple[int, subprocess.Popen[bytes]]:
        if name in self.components:  # servers: started and ready on return (Kafka also gets its topics)
            component = self.components[name]
            self.stack.state.drop(component)
            try:
                self.stack._up_one(component)
            except InfraError:
                raise
            except Exception as exc:  # e.g. topic creation on a broker still electing: try again later
                raise InfraError(f"{name} started but is not ready: {exc!r}") from exc
            managed = self.stack.started[component]
        else:  # services: only spawned; `status` shows when they are healthy again
            managed = self.services.spawn(self.specs[name])
        return managed.pid, managed.proc


class _Stop(Exception):
    """SIGTERM while starting: undo what was started, as on Ctrl-C in `driftloop up`."""


def _emit(out: TextIO, **message: object) -> None:
    try:
        out.write(json.dumps(message) + "\n")
        out.flush()
    except (BrokenPipeError, ValueError):  # the `driftloop up` that launched us is gone: keep going
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftloop.infra.supervisor")
    parser.add_argument("--model", default=None, help="Model the model server serves.")
    parser.add_argument("--interval", type=float, default=0.5, help="Seconds between two looks.")
    args = parser.parse_args(argv)
    settings = Settings()
    if ensure_local_token(settings):
        settings = Settings()  # built again so the services started below accept and send the new token
    out = sys.stdout

    def progress(message: str) -> None:
        if starting:  # told to the `driftloop up` waiting on the pipe; restarts later go to the log
            _emit(out, progress=message)

    stack = LocalStack(settings, progress=progress)
    services = Supervisor(
        settings,
        service_table(settings, args.model),
        start_timeout=settings.service_start_timeout_s,
        progress=progress,
    )
    stopping = False

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if starting:
            raise _Stop

    starting = True
    signal.signal(signal.SIGTERM, on_term)
    stat = _proc_stat(os.getpid())
    me = Record(os.getpid(), "", 0, "", str(services.log_path(NAME)), stat[1] if stat else None)
    with locked(services.data_dir / "services.lock"):
        services.state.put(NAME, me)  # so `driftloop down` finds us whoever launched us
    try:
        s3 = settings.resolved_artifact_root.startswith("s3://")
        statuses = stack.up(default_components(s3), report=lambda st: _emit(out, line=st.line()))
        unreachable = [st for st in statuses if not st.up]
        if unreachable:
            raise InfraError(
                "; ".join(f"{st.component.value} at {st.address} is {st.note}" for st in unreachable)
            )
        services.up(report=lambda st: _emit(out, line=st.line()))
    except (InfraError, _Stop) as exc:
        starting = False
        if stack.started:
            stack.down(list(stack.started))
        with locked(services.data_dir / "services.lock"):
            services.state.drop(NAME)
        _emit(out, error="interrupted" if isinstance(exc, _Stop) else str(exc))
        return 1
    starting = False
    _emit(out, ready=True)
    # from here on the log file is our output: the `driftloop up` that read the pipe has gone
    log = open(services.log_path(NAME), "ab", buffering=0)  # noqa: SIM115 - ours for our whole life
    os.dup2(log.fileno(), sys.stdout.fileno())

    def say(message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)

    watcher = Watcher(stack, services, say)
    say(f"supervising {', '.join(watcher.watched)}")
    while not stopping:
        if not watcher.tick():
            say("no longer recorded in services.json (`driftloop down` or a removed data dir); stopping")
            return 0
        time.sleep(args.interval)
    say("stopping on SIGTERM; the services are left to `driftloop down`")
    return 0


def launch(settings: Settings, model: str | None) -> subprocess.Popen[str]:
    """Start the supervisor in its own session, recorded in ``services.json``; its reports come on stdout."""
    data_dir = settings.data_dir.resolve()
    log_path = data_dir / "logs" / f"{NAME}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "driftloop.infra.supervisor", *(["--model", model] if model else [])]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
        )
    return proc


def running(settings: Settings) -> Record | None:
    """The record of this data dir's supervisor when it runs."""
    records = ProcessRecords(settings.data_dir.resolve() / "services.json", section="services")
    record = records.load().get(NAME)
    return record if record is not None and process_running(record.pid, record.start_ticks) else None


def stop(settings: Settings, timeout: float = 30.0) -> Record | None:
    """Stop the supervisor first, so it restarts nothing that ``down`` stops; returns its record if any."""
    from driftloop.infra.stack import stop_recorded

    data_dir = settings.data_dir.resolve()
    records = ProcessRecords(data_dir / "services.json", section="services")
    record = records.load().get(NAME)
    if record is not None:
        stop_recorded(record, timeout=timeout)
        with locked(data_dir / "services.lock"):
            records.drop(NAME)
    SupervisorState(data_dir).clear()
    return record


if __name__ == "__main__":
    sys.exit(main())
