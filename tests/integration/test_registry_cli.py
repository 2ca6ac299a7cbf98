"""``driftloop models ...`` against a running registry: register, promote, roll back, read the history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from typer.testing import CliRunner

from driftloop.cli.main import app
from driftloop.process import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    port = free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DRIFTLOOP_DATA_DIR": str(tmp_path / "registry"),
        "DRIFTLOOP_REGISTRY_URL": url,
        "DRIFTLOOP_REGISTRY_TOKENS": json.dumps({"w": "wes:writer", "r": "rita:reader"}),
        "DRIFTLOOP_REGISTRY_RELAY_ENABLED": "false",
        "DRIFTLOOP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "services.registry"], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        process.kill()
        process.wait()


def run(url: str, token: str, *args: str) -> tuple[int, str]:
    env = {"DRIFTLOOP_REGISTRY_URL": url, "DRIFTLOOP_REGISTRY_TOKEN": token}
    result = CliRunner().invoke(app, ["models", *args], env=env)
    return result.exit_code, result.output


def test_models_commands_register_promote_roll_back_and_show_history(
    registry_url: str, tmp_path: Path
) -> None:
    name = f"churn-{uuid4().hex[:8]}"
    artifact = tmp_path / "model.joblib"
    for i in (1, 2):
        artifact.write_bytes(f"model {i}".encode())
        code, out = run(
            registry_url, "w", "register", name, str(artifact), "--create", "--metrics", '{"auc": 0.9}'
        )
        assert code == 0, out
        assert f"version {i}" in out
    assert run(registry_url, "w", "promote", name, "1")[0] == 0
    code, out = run(registry_url, "w", "promote", name, "2", "--reason", "better auc")
    assert code == 0 and f"{name}@production → version 2" in out

    code, out = run(registry_url, "r", "list", "--prefix", name)
    assert code == 0 and "production→2" in out
    code, out = run(registry_url, "w", "rollback", name)
    assert code == 0 and "rolled back to version 1" in out
    code, out = run(registry_url, "r", "history", name)
    assert code == 0 and [line.split()[1] for line in out.splitlines()] == ["set", "moved", "rolled_back"]
    assert "(better auc)" in out
    code, out = run(registry_url, "r", "show", name, "--version", "2")
    assert code == 0 and json.loads(out)["metrics"] == {"auc": 0.9}

    code, out = run(registry_url, "r", "promote", name, "2")
    assert code == 1 and "error 403" in out and "field: authorization" in out
    code, out = run(registry_url, "w", "promote", name, "7")
    assert code == 1 and "error 404" in out and "field: version" in out
