"""The supervisor `driftloop up` leaves running: kill -9 of a service or of ClickHouse is recovered without
anyone typing a command, `status` says what happened, `infra down` names what it breaks and sticks.

One system for the whole file (starting it is the expensive part); the steps run in order in one test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop.infra.services import http_status
from driftloop.infra.stack import process_running
from driftloop.process import port_open, wait_until
from tests.integration.test_system_cli import System, _line, _pid

pytestmark = pytest.mark.integration

DRIFTLOOP = str(Path(sys.executable).with_name("driftloop"))


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    s = System(tmp_path / "system")
    yield s
    s.run("down")  # never leave processes behind, even when the test failed half-way


def _pids(system: System, name: str) -> list[int]:
    line = _line(system.run("status").stdout, name)
    return [_pid(line)] if " pid " in line else []


def _restarts(system: System, name: str) -> dict[str, Any]:
    watched: dict[str, dict[str, Any]] = json.loads((system.data_dir / "supervisor.json").read_text())[
        "watched"
    ]
    return watched[name]


def _recovery(check: Callable[[], bool], deadline: float) -> float:
    """Seconds until ``check`` holds, failing after ``deadline``."""
    began = time.monotonic()
    wait_until(check, timeout=deadline, what="recovery", interval=0.1)
    return time.monotonic() - began


def test_kill_9_is_recovered_and_reported(system: System) -> None:
    up = system.run("up")
    assert up.returncode == 0, up.stderr + up.stdout
    assert _line(up.stdout, "supervisor").split()[1] == "up"
    status = system.run("status").stdout
    ingest, clickhouse = _pid(_line(status, "ingest")), _pid(_line(status, "clickhouse"))
    ingest_health = f"http://127.0.0.1:{system.ports['ingest']}/healthz"

    os.kill(ingest, signal.SIGKILL)
    took = _recovery(lambda: http_status(ingest_health) == 200, deadline=30)
    print(f"ingest: kill -9 -> /healthz 200 again in {took:.1f}s")
    line = _line(system.run("status").stdout, "ingest")
    assert line.split()[1] == "up" and _pid(line) != ingest, line
    assert "restarts 1, last exit: killed by SIGKILL" in line
    assert _restarts(system, "ingest")["last_log_lines"], (
        "the end of the crashed service's log is kept with its exit reason"
    )

    # a service that cannot start again (its port is taken) is retried with backoff, and comes back once it can
    registry = _pid(_line(system.run("status").stdout, "registry"))
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        os.kill(registry, signal.SIGKILL)
        wait_until(lambda: _bind(squatter, system.ports["registry"]), timeout=10, what="the registry's port")
        wait_until(
            lambda: (_restarts(system, "registry")["last_exit"] or "").startswith("could not restart"),
            timeout=30,
            what="the supervisor's failed restart of the registry",
        )
        line = _line(system.run("status").stdout, "registry")
        assert line.split()[1] == "down" and "could not restart" in line, line
    took = _recovery(lambda: http_status(f"{system.registry_url}/healthz") == 200, deadline=45)
    print(f"registry: port free again -> /healthz 200 in {took:.1f}s")
    assert _restarts(system, "registry")["restarts"] >= 1

    os.kill(clickhouse, signal.SIGKILL)
    ping = f"http://127.0.0.1:{system.ports['clickhouse']}/ping"
    took = _recovery(lambda: http_status(ping) == 200, deadline=60)
    print(f"clickhouse: kill -9 -> /ping 200 again in {took:.1f}s")
    line = _line(system.run("status").stdout, "clickhouse")
    assert line.split()[1] == "up" and "restarts 1, last exit: killed by SIGKILL" in line, line
    monitor = f"http://127.0.0.1:{system.ports['monitor']}/health"
    wait_until(lambda: http_status(monitor) == 200, timeout=60, what="the monitor on the new ClickHouse")

    # `infra down` under running services: it names them, stops the server, and the supervisor leaves it
    infra_down = subprocess.run(
        [DRIFTLOOP, "infra", "down", "clickhouse"],
        env=system.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert infra_down.returncode == 0, infra_down.stderr
    assert "warning: stopping clickhouse breaks running services: monitor" in infra_down.stderr
    time.sleep(2)  # longer than the first backoff step
    assert not port_open("127.0.0.1", system.ports["clickhouse"]), "the supervisor restarted a stopped server"

    # the supervisor itself killed: nothing restarts until `up`, which starts a new one that finds the
    # services running and watches them (how they end is unknown to it: they are not its children)
    os.kill(_pid(_line(system.run("status").stdout, "supervisor")), signal.SIGKILL)
    wait_until(
        lambda: _line(system.run("status").stdout, "supervisor").split()[1] == "down",
        timeout=10,
        what="status to see the supervisor gone",
    )
    again = system.run("up")
    assert again.returncode == 0, again.stderr
    assert "already running" in _line(again.stdout, "ingest")
    ingest = _pid(_line(again.stdout, "ingest"))
    os.kill(ingest, signal.SIGKILL)
    _recovery(lambda: http_status(ingest_health) == 200 and ingest not in _pids(system, "ingest"), 30)
    assert "last exit: exited (status unknown" in _line(system.run("status").stdout, "ingest")

    pids = {name: _pid(_line(system.run("status").stdout, name)) for name in ("supervisor", "ingest")}
    down = system.run("down")
    assert down.returncode == 0, down.stderr
    lines = down.stdout.splitlines()
    assert lines.index(_line(down.stdout, "supervisor")) < lines.index(_line(down.stdout, "ingest"))
    for pid in pids.values():
        assert not process_running(pid)


def _bind(sock: socket.socket, port: int) -> bool:
    """Take ``port`` as soon as the killed service let go of it."""
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    sock.listen()
    return True
