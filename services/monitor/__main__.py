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

from aiohttp import web

from services.monitor.consumer import MonitorLoop, Publisher
from services.monitor.observability import MonitorMetrics, web_app
from services.monitor.profiles import ProfileSource, RegistryProfiles, load_profiles_file
from services.monitor.worker import Monitor
from shared.dependencies import Dependencies
from shared.kafka.logs import quiet_kafka_client
from shared.settings import Settings

log = logging.getLogger("services.monitor")


async def serve(settings: Settings, web_port: int, profiles: ProfileSource) -> None:
    metrics = MonitorMetrics()
    dependencies = Dependencies()
    publisher = Publisher(settings, dependencies)
    monitor = Monitor(settings, profiles, publisher.send, metrics)
    loop = MonitorLoop(settings, monitor, publisher, metrics, dependencies)
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    runner = web.AppRunner(web_app(metrics, loop.status), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", web_port).start()
    log.info("monitor worker %s: /health and /metrics on http://127.0.0.1:%d", monitor.worker, web_port)
    try:
        await loop.run(stopping)
    finally:
        await runner.cleanup()
        log.info("monitor worker %s stopped", monitor.worker)


def tune_garbage_collector() -> None:
    """Collect the young generation every 50,000 allocations instead of 700, and never re-scan start-up objects.

    Every batch makes tens of thousands of short-lived record objects, freed by reference counting, yet
    each 700 allocations started a collection, and full ones (about 140 ms each) walked every module
    object too. Alternating benchmark runs: worker CPU 9.4-10.1 instead of 11.8-13.1 µs per event,
    64,000-74,000 instead of 53,000-62,000 events/s.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Driftloop monitor worker.")
    parser.add_argument("--web-port", type=int, default=None, help="Default: DRIFTLOOP_MONITOR_WEB_PORT.")
    parser.add_argument("--loglevel", default=None)
    parser.add_argument(
        "--profiles",
        type=Path,
        default=None,
        help="JSON file of reference profiles to use instead of the registry's (see services/monitor/profiles.py).",
    )
    args = parser.parse_args()
    settings = Settings()
    logging.basicConfig(
        level=(args.loglevel or settings.log_level).upper(),
        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
    )
    profiles = (
        load_profiles_file(args.profiles, settings.drift_thresholds)
        if args.profiles
        else RegistryProfiles(settings)
    )
    tune_garbage_collector()
    quiet_kafka_client()
    asyncio.run(serve(settings, args.web_port or settings.monitor_web_port, profiles))


if __name__ == "__main__":
    main()
