"""``python -m services.trainer``: the trainer worker, configured from ``DRIFTLOOP_*`` settings.

Serves ``/health`` and ``/metrics`` on ``DRIFTLOOP_TRAINER_WEB_HOST`` (127.0.0.1) and ``--web-port`` (default
``DRIFTLOOP_TRAINER_WEB_PORT``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from services.trainer.bootstrap import TrainerProcess, bootstrap
from services.trainer.entrypoints.http import serve_health
from shared.kafka.logs import quiet_kafka_client


async def serve(process: TrainerProcess, web_port: int) -> None:
    host = process.settings.trainer_web_host
    async with serve_health(process.metrics, process.dependencies, web_port, host):
        await process.worker.run()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a Driftloop trainer worker.")
    parser.add_argument("--web-port", type=int, default=None, help="Default: DRIFTLOOP_TRAINER_WEB_PORT.")
    args = parser.parse_args()
    process = bootstrap()
    settings = process.settings
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_kafka_client()
    if settings.resolved_artifact_root.startswith("s3://"):
        settings.refuse_shipped_secrets(
            "the trainer", ["s3_secret_access_key"], talks_to=(settings.s3_endpoint_url,)
        )
    asyncio.run(serve(process, settings.trainer_web_port if args.web_port is None else args.web_port))


if __name__ == "__main__":
    main()
