"""``python -m services.advisor``: the scaling advisor (one replica is enough; two would advise twice).

SIGTERM or Ctrl-C stops it after the reading in hand.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from services.advisor.bootstrap import bootstrap
from services.advisor.entrypoints.http import serve_http
from shared.kafka.logs import quiet_kafka_client

log = logging.getLogger("services.advisor")


async def serve(args: argparse.Namespace) -> None:
    _, loop, settings = bootstrap()
    logging.basicConfig(
        level=(args.loglevel or settings.log_level).upper(),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    port = args.web_port or settings.advisor_web_port
    async with serve_http(loop.status, args.host, port):
        log.info("scaling advisor: /health and /advice on http://%s:%d", args.host, port)
        await loop.run(stopping)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Driftloop's scaling advisor.")
    parser.add_argument("--web-port", type=int, default=None, help="Default: DRIFTLOOP_ADVISOR_WEB_PORT.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0 in a container).")
    parser.add_argument("--loglevel", default=None)
    args = parser.parse_args()
    quiet_kafka_client()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
