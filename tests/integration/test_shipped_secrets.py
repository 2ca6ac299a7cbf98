"""A service that would be reachable from other machines refuses to start with a secret shipped in this repo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _start(module: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, "DRIFTLOOP_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_ingest_on_a_public_address_with_the_default_api_key_does_not_start(tmp_path: Path) -> None:
    done = _start(
        "services.ingest", {"DRIFTLOOP_INGEST_HOST": "0.0.0.0", "DRIFTLOOP_INGEST_PORT": "1"}, tmp_path
    )
    assert done.returncode != 0
    assert "DRIFTLOOP_INGEST_API_KEYS" in done.stderr and "docs/security.md" in done.stderr


def test_a_registry_on_a_public_address_refuses_anonymous_writes(tmp_path: Path) -> None:
    env = {
        "DRIFTLOOP_REGISTRY_URL": "http://registry.internal:1",
        "DRIFTLOOP_REGISTRY_ALLOW_ANONYMOUS_WRITES": "true",
    }
    done = _start("services.registry", env, tmp_path)
    assert done.returncode != 0 and "DRIFTLOOP_REGISTRY_TOKENS" in done.stderr
