"""``python -m services.monitor``: run one monitor worker process (several share the work by partition).

SIGTERM or Ctrl-C finishes and commits the batch in hand, then stops.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from pathlib import Path

from services.monitor.bootstrap import bootstrap, stream_loop
from services.monitor.entrypoints.http import serve_http
from shared.kafka.logs import quiet_kafka_client

log = logging.getLogger("services.monitor")


async def serve(args: argparse.Namespace) -> None:
    """Build the worker, serve ``/health`` and ``/metrics``, and run its Kafka loop until a signal."""
    monitor = bootstrap(profiles_file=args.profiles)
    tune_garbage_collector()  # after start-up, so what bootstrap built is frozen too
    logging.basicConfig(
        level=(args.loglevel or monitor.settings.log_level).upper(),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    loop = stream_loop(monitor)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    web_port = args.web_port or monitor.settings.monitor_web_port
    host = monitor.settings.monitor_web_host
    async with serve_http(monitor.metrics, loop.status, web_port, host):
        log.info("monitor worker %s: /health and /metrics on http://%s:%d", monitor.worker, host, web_port)
        await loop.run(stopping)
    log.info("monitor worker %s stopped", monitor.worker)


YOUNG_GENERATION = 200_000
"""Tracked objects made and not yet freed before the young generation is collected (Python's default: 700).

A batch of 25,000 events holds about 75,000 tracked objects (records, decoded events, their ids) for as
long as it is in hand, up to three batches. At 50,000 a collection started in the middle of every batch's
decode and walked the batches in hand again and again: about 1.2 µs of the worker's CPU per event, against
0.1 µs at 200,000 (docs/monitor.md). Garbage in reference cycles still counts towards the threshold, so it
is still collected."""


def tune_garbage_collector() -> None:
    """Collect the young generation only after ``YOUNG_GENERATION`` net allocations, and never re-scan
    start-up objects.

    Every batch makes tens of thousands of record objects, freed by reference counting, yet each 700
    allocations started a collection, and full ones walked every module object too (figures in
    docs/monitor.md).
    """
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, 20, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Driftloop monitor worker.")
    parser.add_argument("--web-port", type=int, default=None, help="Default: DRIFTLOOP_MONITOR_WEB_PORT.")
    parser.add_argument("--loglevel", default=None)
    parser.add_argument(
        "--profiles",
        type=Path,
        default=None,
        help="JSON file of reference profiles to use instead of the registry's (see services/monitor/domain/profiles.py).",
    )
    args = parser.parse_args()
    quiet_kafka_client()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
