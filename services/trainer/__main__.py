"""``python -m services.trainer``: the trainer worker, configured from ``DRIFTLOOP_*`` settings.

Serves ``/health`` and ``/metrics`` on 127.0.0.1 (``--web-port``, default ``DRIFTLOOP_TRAINER_WEB_PORT``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from aiohttp import web

from services.trainer.config import trainer_config
from services.trainer.observability import TrainerMetrics, web_app
from services.trainer.worker import TrainerWorker
from shared.dependencies import Dependencies
from shared.kafka.logs import quiet_kafka_client
from shared.settings import Settings

log = logging.getLogger("services.trainer")


async def serve(settings: Settings, web_port: int) -> None:
    metrics = TrainerMetrics()
    dependencies = Dependencies(running=False, on_change=metrics.dependencies_away.set)
    worker = TrainerWorker(settings, trainer_config(settings), metrics, dependencies)
    runner = web.AppRunner(web_app(metrics, dependencies), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", web_port)
    try:
        await site.start()
        log.info("trainer: /health and /metrics on %s", site.name)
    except OSError as exc:  # training matters more than its health page: run on, say so once
        log.error(
            "trainer: no /health or /metrics, port %d is taken (%s); set DRIFTLOOP_TRAINER_WEB_PORT",
            web_port,
            exc,
        )
    try:
        await worker.run()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Driftloop trainer worker.")
    parser.add_argument("--web-port", type=int, default=None, help="Default: DRIFTLOOP_TRAINER_WEB_PORT.")
    args = parser.parse_args()
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_kafka_client()
    if settings.resolved_artifact_root.startswith("s3://"):
        settings.refuse_shipped_secrets(
            "the trainer", ["s3_secret_access_key"], talks_to=(settings.s3_endpoint_url,)
        )
    port = settings.trainer_web_port if args.web_port is None else args.web_port
    asyncio.run(serve(settings, port))


if __name__ == "__main__":
    main()
