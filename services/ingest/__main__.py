"""``python -m services.ingest``: the ingest HTTP service (and, by default, the stream validator) on uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import uvicorn

from services.ingest.bootstrap import bootstrap, read_settings
from services.ingest.entrypoints import stream
from services.ingest.entrypoints.http import create_app
from shared.kafka.logs import quiet_kafka_client


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.ingest", description=__doc__)
    parser.add_argument(
        "--validator-only",
        action="store_true",
        help="Run only the stream validator (Prometheus metrics on ingest_port + 1), no HTTP API.",
    )
    args = parser.parse_args(argv)
    settings = read_settings()
    logging.basicConfig(level=settings.log_level)
    quiet_kafka_client()
    if args.validator_only:
        asyncio.run(stream.serve(bootstrap(settings)))
        return
    settings.refuse_shipped_secrets("ingest", ["ingest_api_keys"], listens_on=settings.ingest_host)
    service = bootstrap(settings)
    uvicorn.run(create_app(service), host=settings.ingest_host, port=settings.ingest_port, log_level="info")


if __name__ == "__main__":
    main()
