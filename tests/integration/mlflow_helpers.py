"""A registry served over real HTTP on a free port, and the real MLflow client pointed at it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from driftloop.process import free_port
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from shared.settings import Settings


@contextmanager
def served_registry(settings: Settings) -> Iterator[str]:
    """The registry built from ``settings`` (relays as configured) on 127.0.0.1; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(bootstrap(settings)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the registry did not start in 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def point_mlflow_at(monkeypatch: pytest.MonkeyPatch, url: str, token: str) -> None:
    """What a user does: two environment variables (and no retries, no telemetry, so failures show now)."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    # the client exports the active experiment and run to os.environ for its subprocesses; recorded as absent
    # here, they are removed again after the test instead of leaking into later tests' subprocesses
    for leaked in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(leaked, raising=False)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
