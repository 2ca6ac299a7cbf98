"""``driftloop up|status|logs|down`` as a user runs them: real subprocesses, real servers, free ports.

One test walks the whole life cycle so the suite starts the system once (plus one short failed start).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.infra.stack import process_running
from driftloop.process import port_open, wait_until
from tests.fixtures.kafka import free_ports, random_topic_prefix

pytestmark = pytest.mark.integration

SERVICES = ("registry", "ingest", "monitor", "serving")


class System:
    """One isolated system: its own data dir, ports and topic prefix, passed to the CLI through env vars."""

    def __init__(self, data_dir: Path) -> None:
        ports = free_ports(11)
        kafka, controller, clickhouse, s3, registry, ingest, monitor, serving, trainer, advisor, console = (
            ports
        )
        self.data_dir = data_dir
        self.ports = {
            "kafka": kafka,
            "clickhouse": clickhouse,
            "registry": registry,
            "ingest": ingest,
            "monitor": monitor,
            "serving": serving,
        }
        self.registry_url = f"http://127.0.0.1:{registry}"
        self.env = {
            **os.environ,
            "DRIFTLOOP_DATA_DIR": str(data_dir),
            "DRIFTLOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
            "DRIFTLOOP_KAFKA_CONTROLLER_PORT": str(controller),
            "DRIFTLOOP_KAFKA_HEAP": "256m",
            "DRIFTLOOP_CLICKHOUSE_URL": f"http://127.0.0.1:{clickhouse}",
            "DRIFTLOOP_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3}",
            "DRIFTLOOP_REGISTRY_URL": self.registry_url,
            "DRIFTLOOP_INGEST_PORT": str(ingest),
            "DRIFTLOOP_MONITOR_WEB_PORT": str(monitor),
            "DRIFTLOOP_TRAINER_WEB_PORT": str(trainer),
            "DRIFTLOOP_ADVISOR_WEB_PORT": str(advisor),
            "DRIFTLOOP_CONSOLE_PORT": str(console),
            "DRIFTLOOP_SERVING_PORT": str(serving),
            "DRIFTLOOP_TOPIC_PREFIX": random_topic_prefix(),
        }

    def run(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "driftloop.cli.system", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    s = System(tmp_path / "system")
    yield s
    s.run("down")  # never leave processes behind, even when the test failed half-way


def _line(output: str, name: str) -> str:
    lines = [line for line in output.splitlines() if line.split()[:1] == [name]]
    assert len(lines) == 1, f"expected one {name} line in:\n{output}"
    return lines[0]


def _pid(line: str) -> int:
    words = line.split()
    return int(words[words.index("pid") + 1])


def test_a_service_that_cannot_start_is_named_and_up_cleans_after_itself(system: System) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", system.ports["ingest"]))
        squatter.listen()
        failed = system.run("up")
    assert failed.returncode == 1, failed.stdout
    assert "service ingest failed to start" in failed.stderr
    assert f"port 127.0.0.1:{system.ports['ingest']} is already in use" in failed.stderr
    # what this `up` started (infrastructure and the registry before ingest) is stopped again
    assert "started" in _line(failed.stdout, "registry")
    for name in ("kafka", "clickhouse", "registry"):
        assert not port_open("127.0.0.1", system.ports[name]), f"{name} was left running"
    assert not (system.data_dir / "services.json").exists()
    assert not (system.data_dir / "stack.json").exists()


def test_up_status_logs_down(system: System) -> None:
    up = system.run("up")
    assert up.returncode == 0, up.stderr + up.stdout
    for name in SERVICES:
        line = _line(up.stdout, name)
        assert line.split()[1] == "up", up.stdout
        assert f"http://127.0.0.1:{system.ports[name]}" in line
        assert str(system.data_dir / "logs" / f"{name}.log") in line
    trainer = _line(up.stdout, "trainer")
    assert "not installed" in trainer or trainer.split()[1] == "up"
    running = (*SERVICES, *(() if "not installed" in trainer else ("trainer",)))

    status = system.run("status")
    assert status.returncode == 0, status.stderr
    pids = {}
    for name in ("kafka", "clickhouse", *running):
        line = _line(status.stdout, name)
        assert line.split()[1] == "up", status.stdout
        pids[name] = _pid(line)
        assert process_running(pids[name])
    assert "owns partitions" in status.stdout, "the monitor's line says which partitions (models) it owns"

    with urllib.request.urlopen(f"{system.registry_url}/models", timeout=10) as response:
        assert response.status == 200
        assert "items" in json.loads(response.read())

    again = system.run("up")
    assert again.returncode == 0, again.stderr
    for name in SERVICES:
        line = _line(again.stdout, name)
        assert "already running" in line and _pid(line) == pids[name]

    logs = system.run("logs", "registry")
    assert logs.returncode == 0, logs.stderr
    assert f"Uvicorn running on {system.registry_url}" in logs.stdout
    unknown = system.run("logs", "nosuch")
    assert unknown.returncode == 1 and "unknown service 'nosuch'" in unknown.stderr

    down = system.run("down")
    assert down.returncode == 0, down.stderr
    out = down.stdout.splitlines()
    # services stop before the infrastructure they write to
    assert max(out.index(_line(down.stdout, n)) for n in SERVICES) < out.index(_line(down.stdout, "kafka"))
    for name, pid in pids.items():
        assert f"stopped (pid {pid})" in _line(down.stdout, name)
        assert not process_running(pid)
        assert name not in system.ports or not port_open("127.0.0.1", system.ports[name])
    # SIGTERM, not SIGKILL: the services shut down cleanly (the model server closed its producer)
    assert "Application shutdown complete" in (system.data_dir / "logs" / "serving.log").read_text()
    after = system.run("status")
    for name in ("kafka", *SERVICES):
        assert _line(after.stdout, name).split()[1] == "down"


def test_run_one_service_starts_the_local_infrastructure_it_needs_and_stops_it(system: System) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftloop.cli.system", "run", "registry"],
        env=system.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: port_open("127.0.0.1", system.ports["registry"]) or proc.poll() is not None,
            timeout=180,
            what="driftloop run registry",
        )
        assert proc.poll() is None, proc.communicate()[0]
        status = system.run("status")
        assert _line(status.stdout, "kafka").split()[1] == "up"  # the registry relays to Kafka: started
        assert _line(status.stdout, "registry").split()[1] == "up"
        with urllib.request.urlopen(f"{system.registry_url}/models", timeout=10) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, output
    assert "Application shutdown complete" in output  # the service itself stopped gracefully
    assert not port_open("127.0.0.1", system.ports["kafka"])
    assert not (system.data_dir / "stack.json").exists()
