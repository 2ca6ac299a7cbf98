"""``python -m services.ingest``: the ingest HTTP service (and, by default, the stream validator) on uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from services.ingest.app import create_app
from shared.kafka.logs import quiet_kafka_client
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level)
    quiet_kafka_client()
    settings.refuse_shipped_secrets("ingest", ["ingest_api_keys"], listens_on=settings.ingest_host)
    uvicorn.run(create_app(settings), host=settings.ingest_host, port=settings.ingest_port, log_level="info")


if __name__ == "__main__":
    main()
