"""The embedded ClickHouse server: ClickHouse's HTTP interface served from chDB, persisted in a data folder.

Importing this package is cheap; the engine and the HTTP stack load only in the server process.
"""

from __future__ import annotations

import base64
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from driftloop.clickhouse_server import auth
from driftloop.process import InfraError, ManagedProcess, ensure_port_free, spawn, wait_until

__all__ = ["server_url", "start_clickhouse_server"]


def server_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _answers(url: str, user: str, password: str) -> bool:
    """True once the server answers a real query (the engine is open, not just the socket)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(f"{url}/?query=SELECT%201", headers={"Authorization": f"Basic {token}"})
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        with opener.open(request, timeout=2) as response:
            return bool(response.status == 200 and response.read() == b"1\n")
    except (urllib.error.URLError, OSError):
        return False


def start_clickhouse_server(
    host: str,
    port: int,
    data_dir: Path,
    log_path: Path,
    timeout: float = 60.0,
    user: str | None = None,
    password: str | None = None,
) -> ManagedProcess:
    """Start the server on ``host:port`` over ``data_dir`` and return once it answers queries.

    Tables and rows live in ``data_dir`` and survive a restart; stop the process with SIGTERM
    (``ManagedProcess.stop``) so queued work finishes before it exits. The server accepts ``user`` with
    ``password`` only (handed over in its environment, which other users cannot read, unlike its command
    line); left None, each comes from DRIFTLOOP_CLICKHOUSE_USER / _PASSWORD in this process's environment.
    """
    ensure_port_free("the ClickHouse server", host, port)
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "driftloop.clickhouse_server", "--host", host, "--port", str(port)]
    argv += ["--path", str(data_dir)]
    root = Path(__file__).resolve().parents[2]
    env = {}
    if user is not None:
        env[auth.USER_ENV] = user
    if password is not None:
        env[auth.PASSWORD_ENV] = password
    expected = auth.configured({**os.environ, **env})
    managed = spawn("clickhouse", argv, log_path, env=env, cwd=root)
    url = server_url(host, port)
    try:
        wait_until(
            lambda: _answers(url, expected.user, expected.password),
            timeout=timeout,
            what=f"the ClickHouse server at {url}",
            proc=managed.proc,
            log_path=log_path,
        )
    except InfraError:
        managed.stop(timeout=5)
        raise
    return managed
