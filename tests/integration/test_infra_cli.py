"""``driftloop infra up|status|down`` as a user runs them: real subprocesses, real servers, free ports."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from driftloop.infra.stack import Component, LocalStack, ProcessRecords, local_stack, process_running
from driftloop.process import port_open
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import free_ports, random_topic_prefix

pytestmark = pytest.mark.integration

DRIFTLOOP = [str(Path(sys.executable).with_name("driftloop"))]


class Stack:
    """One isolated stack: its own data dir, ports and topic prefix, passed to the CLI through env vars."""

    def __init__(self, data_dir: Path) -> None:
        kafka, controller, clickhouse, s3 = free_ports(4)
        self.kafka_port, self.controller_port, self.clickhouse_port, self.s3_port = (
            kafka,
            controller,
            clickhouse,
            s3,
        )
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "DRIFTLOOP_DATA_DIR": str(data_dir),
            "DRIFTLOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
            "DRIFTLOOP_KAFKA_CONTROLLER_PORT": str(controller),
            "DRIFTLOOP_KAFKA_HEAP": "256m",
            "DRIFTLOOP_CLICKHOUSE_URL": f"http://127.0.0.1:{clickhouse}",
            "DRIFTLOOP_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3}",
            "DRIFTLOOP_TOPIC_PREFIX": random_topic_prefix(),
        }

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DRIFTLOOP, "infra", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def settings(self) -> Settings:
        keys = {k[len("DRIFTLOOP_") :].lower(): v for k, v in self.env.items() if k.startswith("DRIFTLOOP_")}
        return Settings(**keys)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path / "stack")
    yield s
    s.run("down")  # never leave servers behind, even when the test failed half-way


def _line(output: str, component: str) -> str:
    lines = [line for line in output.splitlines() if line.split()[:1] == [component]]
    assert len(lines) == 1, f"expected one {component} line in:\n{output}"
    return lines[0]


def _topics(bootstrap: str) -> set[str]:
    async def go() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(go())


def test_up_status_up_again_down(stack: Stack) -> None:
    kafka_addr = f"127.0.0.1:{stack.kafka_port}"

    up = stack.run("up", "--s3")
    assert up.returncode == 0, up.stderr + up.stdout
    kafka_line = _line(up.stdout, "kafka")
    assert kafka_addr in kafka_line and f"controller 127.0.0.1:{stack.controller_port}" in kafka_line
    assert "started" in kafka_line
    prefix = stack.env["DRIFTLOOP_TOPIC_PREFIX"]
    assert set(topic_names(prefix).all()) <= _topics(kafka_addr)
    pid = ProcessRecords(stack.data_dir / "stack.json").load()[Component.KAFKA].pid

    status = stack.run("status")
    assert status.returncode == 0, status.stderr
    kafka_status = _line(status.stdout, "kafka")
    assert kafka_status.split()[1] == "up" and kafka_addr in kafka_status and f"pid {pid}" in kafka_status
    assert str(stack.data_dir / "logs" / "kafka.log") in kafka_status
    for component, address in (
        ("clickhouse", f"http://127.0.0.1:{stack.clickhouse_port}"),
        ("s3", f"http://127.0.0.1:{stack.s3_port}"),
    ):
        line = _line(status.stdout, component)
        assert line.split()[1] == "up" and address in line, status.stdout
    ping = urllib.request.urlopen(f"http://127.0.0.1:{stack.clickhouse_port}/ping", timeout=5).read()
    assert ping == b"Ok.\n"

    again = stack.run("up", "--s3")
    assert again.returncode == 0, again.stderr
    assert "already running" in _line(again.stdout, "kafka") and f"pid {pid}" in again.stdout

    down = stack.run("down")
    assert down.returncode == 0, down.stderr
    assert f"stopped (pid {pid})" in _line(down.stdout, "kafka")
    assert "stopped" in _line(down.stdout, "clickhouse") and "stopped" in _line(down.stdout, "s3")
    for port in (stack.kafka_port, stack.clickhouse_port, stack.s3_port):
        assert not port_open("127.0.0.1", port)
    assert not process_running(pid)
    assert not (stack.data_dir / "stack.json").exists()
    assert _line(stack.run("status").stdout, "kafka").split()[1] == "down"


def test_port_taken_by_another_process_is_a_clear_error(stack: Stack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", stack.kafka_port))
        squatter.listen()
        up = stack.run("up", "kafka")
    assert up.returncode == 1
    assert f"port 127.0.0.1:{stack.kafka_port} is already in use" in up.stderr
    assert not (stack.data_dir / "stack.json").exists()


def test_local_stack_stops_only_what_it_started(stack: Stack) -> None:
    settings = stack.settings()
    with local_stack(settings, components=[Component.KAFKA]) as started:
        assert list(started.started) == [Component.KAFKA]
        assert port_open("127.0.0.1", stack.kafka_port)
        assert "kafka" in stack.run("status").stdout  # visible to other shells while it runs
        with local_stack(settings, components=[Component.KAFKA]) as nested:
            assert nested.started == {}  # already running: used, not restarted
        assert port_open("127.0.0.1", stack.kafka_port), "the inner block must not stop what it reused"
    assert not port_open("127.0.0.1", stack.kafka_port)
    assert LocalStack(settings).state.load() == {}


def test_down_stops_a_server_whose_starter_is_gone(tmp_path: Path) -> None:
    """`down` runs in another shell: the server is not its child, and an unreaped zombie counts as stopped."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    from driftloop.infra.stack import Record, _proc_stat, stop_recorded

    stat = _proc_stat(child.pid)
    record = Record(child.pid, "127.0.0.1", 1, "x", str(tmp_path / "log"), stat[1] if stat else None)
    assert process_running(record.pid, record.start_ticks)
    assert not process_running(record.pid, (record.start_ticks or 0) + 1), "a reused pid is not ours"
    stop_recorded(record, timeout=5)  # we never reap it before checking: it is a zombie now
    assert not process_running(record.pid, record.start_ticks)
    child.wait(timeout=5)
