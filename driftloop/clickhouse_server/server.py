"""Run the embedded ClickHouse server until SIGTERM/SIGINT, then drain requests and close the engine cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from driftloop.clickhouse_server.auth import Credentials
from driftloop.clickhouse_server.engine import DEFAULT_SESSIONS, Engine
from driftloop.clickhouse_server.http import make_server

log = logging.getLogger(__name__)

#: How long in-flight requests get to finish after a stop signal before their connections are closed.
SHUTDOWN_GRACE_SECONDS = 15.0


async def serve(
    host: str,
    port: int,
    data_dir: Path,
    stop: asyncio.Event | None = None,
    sessions: int = DEFAULT_SESSIONS,
    credentials: Credentials | None = None,
) -> None:
    """Serve ``data_dir`` on ``host:port`` until ``stop`` is set or the process gets SIGTERM/SIGINT."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    engine = Engine(data_dir, sessions)
    await engine.open()
    server, http = make_server(engine, credentials)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    try:
        await site.start()
        log.info("ClickHouse %s (chDB) over HTTP on %s:%d, data in %s", engine.version, host, port, data_dir)
        await stop.wait()
        log.info("stopping: no new connections, finishing in-flight requests")
        await site.stop()
        if not await http.drain(SHUTDOWN_GRACE_SECONDS):
            log.warning("requests still running after %.0fs are cut off", SHUTDOWN_GRACE_SECONDS)
    finally:
        await runner.cleanup()
        await engine.close()  # finish queued engine work and close the session: all parts on disk
        log.info("stopped")


def run(
    host: str,
    port: int,
    data_dir: Path,
    sessions: int = DEFAULT_SESSIONS,
    credentials: Credentials | None = None,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(host, port, data_dir, sessions=sessions, credentials=credentials))
