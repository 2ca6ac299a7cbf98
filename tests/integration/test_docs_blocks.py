"""Every shell and Python block of README.md and docs/*.md runs as written, against one live local system.

The module starts the system once (``driftloop up --model churn``, as the README says) and runs each block
the way a newcomer would type it after ``make setup`` and ``source .venv/bin/activate``:

- from the repo root, with ``.venv/bin`` first on PATH; a shell block in ``bash`` with ``set -euo
  pipefail``, so a failing command fails the block; a Python block fed to the venv's ``python``;
- the "repo root" is a temporary folder of links to the checkout's top-level entries with its own
  ``.driftloop`` (the system's data folder), so what blocks write (``model.joblib``, ``out.csv``) never
  lands in the checkout;
- the system listens on free ports, so the local default addresses in a block (``localhost:8100``,
  ``127.0.0.1:8123``, ...) are pointed at them, and the ``DRIFTLOOP_*`` variables name them;
- ``curl`` fails on an HTTP error status (``fail-with-body`` in a ``.curlrc`` under ``CURL_HOME``), so a
  refused request fails its block instead of printing an error body.

Blocks run in reading order (README, then docs/*.md by name), because later pages build on what the
README did (the ``churn`` model it registers); blocks that stop the system (``driftloop down``,
``driftloop infra down``) run last, after a check that every sample event the blocks sent was stored and
none was dead-lettered. A block is left out only with ``<!-- not-run: REASON -->`` right
before it; ``tests/unit/test_readme.py`` checks the markers.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from driftloop.process import wait_until
from tests.docs_blocks import PYTHON, ROOT, Block, all_blocks
from tests.fixtures.kafka import free_ports, random_topic_prefix

pytestmark = pytest.mark.integration

BLOCK_TIMEOUT_S = 180

_STOPS_THE_SYSTEM = re.compile(r"\bdriftloop\s+(infra\s+)?down\b")
_LOCAL_ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):(8000|8080|8100|8123)\b")
_DEFAULT_PORTS = {"8000": "registry", "8080": "serving", "8100": "ingest", "8123": "clickhouse"}


def _stops_the_system(block: Block) -> bool:
    return _STOPS_THE_SYSTEM.search(block.code) is not None


RUNNABLE = [block for block in all_blocks()[0] if block.runnable]
KEEPS = [block for block in RUNNABLE if not _stops_the_system(block)]
STOPS = [block for block in RUNNABLE if _stops_the_system(block)]


@dataclass
class Checkout:
    """A repo root to run blocks in: the checkout's entries, its own data folder, the system's settings."""

    root: Path
    env: dict[str, str]
    ports: dict[str, int]

    def run(
        self, *command: str, stdin: str | None = None, timeout: float = BLOCK_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=self.root,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def localize(self, code: str) -> str:
        """The block with the local default addresses pointed at this system's ports."""
        return _LOCAL_ADDRESS.sub(lambda m: f"{m[1]}:{self.ports[_DEFAULT_PORTS[m[2]]]}", code)


def _checkout(root: Path) -> Checkout:
    root.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in {".driftloop", ".git", "model.joblib"}:
            (root / entry.name).symlink_to(entry)
    curl_home = root.parent / "curl-home"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text("fail-with-body\nshow-error\nsilent\n")
    names = (
        "kafka",
        "controller",
        "clickhouse",
        "s3",
        "registry",
        "ingest",
        "monitor",
        "serving",
        "trainer",
        "advisor",
        "console",
    )
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    venv_bin = root / ".venv" / "bin"
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "CURL_HOME": str(curl_home),
        "DRIFTLOOP_DATA_DIR": str(root / ".driftloop"),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
        "DRIFTLOOP_KAFKA_CONTROLLER_PORT": str(ports["controller"]),
        "DRIFTLOOP_KAFKA_HEAP": "256m",
        "DRIFTLOOP_CLICKHOUSE_URL": f"http://127.0.0.1:{ports['clickhouse']}",
        "DRIFTLOOP_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{ports['registry']}",
        "DRIFTLOOP_INGEST_PORT": str(ports["ingest"]),
        "DRIFTLOOP_MONITOR_WEB_PORT": str(ports["monitor"]),
        "DRIFTLOOP_TRAINER_WEB_PORT": str(ports["trainer"]),
        "DRIFTLOOP_ADVISOR_WEB_PORT": str(ports["advisor"]),
        "DRIFTLOOP_CONSOLE_PORT": str(ports["console"]),
        "DRIFTLOOP_SERVING_PORT": str(ports["serving"]),
        "DRIFTLOOP_TOPIC_PREFIX": random_topic_prefix(),
    }
    env.pop("VIRTUAL_ENV", None)
    for name in [n for n in env if n.startswith("MLFLOW_")]:  # a reader's shell starts without them
        env.pop(name)
    return Checkout(root, env, ports)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    c = _checkout(tmp_path_factory.mktemp("docs") / "driftloop")
    driftloop = str(c.root / ".venv" / "bin" / "driftloop")
    try:
        up = c.run(driftloop, "up", "--model", "churn", timeout=400)
        if up.returncode != 0:
            pytest.fail(f"driftloop up failed, so no block can run:\n{up.stdout}\n{up.stderr}")
        yield c
    finally:
        c.run(driftloop, "down", timeout=180)


def _run(checkout: Checkout, block: Block) -> None:
    code = checkout.localize(block.commands())
    if block.language in PYTHON:
        done = checkout.run("python", "-", stdin=code)
    else:
        done = checkout.run("bash", "-euo", "pipefail", "-c", code)
    assert done.returncode == 0, (
        f"{block.where} failed (exit {done.returncode}); fix the page, or mark the block with "
        f"`<!-- not-run: REASON -->`.\n--- ran\n{code}--- stdout\n{done.stdout[-4000:]}"
        f"\n--- stderr\n{done.stderr[-4000:]}"
    )


@pytest.mark.parametrize("block", KEEPS, ids=[block.where for block in KEEPS])
def test_block_runs_as_written(checkout: Checkout, block: Block) -> None:
    _run(checkout, block)


def _clickhouse(checkout: Checkout, query: str) -> int:
    url = f"http://127.0.0.1:{checkout.ports['clickhouse']}/?database=driftloop&query={quote(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.read())


def test_the_sample_events_arrive_and_none_is_dead_lettered(checkout: Checkout) -> None:
    """The docs' samples are valid: every event they send is stored, nothing waits in the dead letters."""
    ids = ", ".join(f"'order-{n}'" for n in range(1, 5))  # docs/examples/predictions.ndjson, docs/ingest.md
    stored = f"SELECT uniqExact(prediction_id) FROM predictions WHERE prediction_id IN ({ids})"
    wait_until(lambda: _clickhouse(checkout, stored) == 4, timeout=60, what="the sample predictions stored")
    labels = f"SELECT uniqExact(prediction_id) FROM labels WHERE prediction_id IN ({ids})"
    wait_until(lambda: _clickhouse(checkout, labels) == 4, timeout=60, what="the sample labels stored")
    assert _clickhouse(checkout, "SELECT count() FROM dead_letters") == 0


@pytest.mark.parametrize("block", STOPS, ids=[block.where for block in STOPS])
def test_block_that_stops_the_system_runs_as_written(checkout: Checkout, block: Block) -> None:
    _run(checkout, block)
