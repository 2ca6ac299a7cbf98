"""``python -m services.registry``: serve the registry on the port of ``DRIFTLOOP_REGISTRY_URL``, in
``DRIFTLOOP_REGISTRY_WORKERS`` processes."""

from __future__ import annotations

import logging

from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import serve
from shared.kafka.logs import quiet_kafka_client


def main() -> None:
    registry = bootstrap()
    logging.basicConfig(level=registry.settings.log_level)
    quiet_kafka_client()
    serve(registry)


if __name__ == "__main__":
    main()
