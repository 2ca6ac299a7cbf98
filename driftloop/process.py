"""Start, watch and stop the local servers (Kafka, ClickHouse, S3) as child processes with log files."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class InfraError(RuntimeError):
    """A local server could not be started or reached; the message says which and what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests that start servers on free ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_port_free(name: str, host: str, port: int) -> None:
    """Fail with a clear message when another process already listens where ``name`` should."""
    if port_open(host, port):
        raise InfraError(
            f"cannot start {name}: port {host}:{port} is already in use by another process; "
            f"stop that process or choose another port in the settings"
        )


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; raise with the log's tail when the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise InfraError(f"{what} exited with code {proc.returncode} while starting{_log_tail(log_path)}")
        time.sleep(interval)
    raise InfraError(f"{what} was not ready after {timeout:.0f}s{_log_tail(log_path)}")


def _log_tail(log_path: Path | None, lines: int = 20) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; see {log_path}:\n" + "\n".join(tail)


@dataclass
class ManagedProcess:
    """A server process started by Driftloop, its log file and how to stop it."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 20.0) -> None:
        stop_pid(self.proc.pid, timeout=timeout, proc=self.proc)


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``argv`` in its own session with output to ``log_path``, so stopping it stops its children."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns the handle for its lifetime
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()
    return ManagedProcess(name=name, proc=proc, log_path=log_path)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when the process that started it dies.

    Linux only (``prctl(PR_SET_PDEATHSIG)``); None elsewhere. The signal comes when the starting *thread*
    exits, so start the child from the thread that waits for it. The child also checks that its parent did
    not die between ``fork`` and ``prctl``, the one window the kernel setting does not cover.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, *, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group, wait for a clean exit, SIGKILL after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=5)
