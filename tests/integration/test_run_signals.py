"""``driftloop run SERVICE`` killed with any signal ends the service it started: no orphan keeps serving."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.infra.stack import _proc_stat, process_running
from driftloop.process import port_open, wait_until
from tests.integration.test_system_cli import System

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One system whose Kafka runs already (`infra up`), so each `run` starts only the service itself."""
    s = System(tmp_path_factory.mktemp("run-signals") / "system")
    up = subprocess.run(
        [str(Path(sys.executable).with_name("driftloop")), "infra", "up", "kafka"],
        env=s.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, up.stderr + up.stdout
    yield s
    s.run("down")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


# SIGKILL stands for every death the launcher cannot handle (SIGHUP, a crash): the kernel signals the child
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: s.name)
def test_killing_the_launcher_ends_the_service(system: System, sig: signal.Signals) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-m", "driftloop.cli.system", "run", "registry"],
        env=system.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: port_open("127.0.0.1", system.ports["registry"]) or launcher.poll() is not None,
            timeout=120,
            what="driftloop run registry",
        )
        assert launcher.poll() is None, launcher.communicate()[0]
        (service,) = _children(launcher.pid)
        ticks = (_proc_stat(service) or ("", None))[1]
        with urllib.request.urlopen(f"{system.registry_url}/healthz", timeout=10) as response:
            assert response.status == 200

        launcher.send_signal(sig)
        launcher.wait(timeout=30)
        wait_until(lambda: not process_running(service, ticks), timeout=15, what="the service to exit")
        assert not port_open("127.0.0.1", system.ports["registry"])
    finally:
        if launcher.poll() is None:
            launcher.kill()
        output = launcher.communicate(timeout=30)[0]
    if sig is signal.SIGTERM:
        assert launcher.returncode == 0, output
        assert "Application shutdown complete" in output  # forwarded once: a graceful stop
