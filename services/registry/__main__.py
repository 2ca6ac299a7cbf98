"""``python -m services.registry``: serve the registry on the port of ``DRIFTLOOP_REGISTRY_URL``, in
``DRIFTLOOP_REGISTRY_WORKERS`` processes."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from services.registry.app import create_app
from shared.kafka.logs import quiet_kafka_client
from shared.settings import Settings


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level)
    quiet_kafka_client()
    url = urlsplit(settings.registry_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    # listen on every interface: in a container the URL's host is the service name, not a local address
    host = "127.0.0.1" if url.hostname in ("127.0.0.1", "localhost") else "0.0.0.0"
    if settings.resolved_artifact_root.startswith("s3://"):
        settings.refuse_shipped_secrets(
            "the registry", ["s3_secret_access_key"], talks_to=(settings.s3_endpoint_url,)
        )
    if host != "127.0.0.1" and settings.registry_allow_anonymous_writes:
        raise SystemExit(
            f"the registry listens on {host} with DRIFTLOOP_REGISTRY_ALLOW_ANONYMOUS_WRITES on: anyone who "
            "reaches it could publish and promote models; configure DRIFTLOOP_REGISTRY_TOKENS instead"
        )
    options: dict[str, Any] = {"host": host, "port": port, "log_level": settings.log_level.lower()}
    if settings.registry_workers > 1:
        # each worker process builds its own settings, engine and caches: replicas sharing one database
        uvicorn.run(
            "services.registry.app:app_from_environment",
            factory=True,
            workers=settings.registry_workers,
            access_log=False,
            **options,
        )
    else:
        uvicorn.run(create_app(settings), access_log=False, **options)


if __name__ == "__main__":
    main()
