"""``python -m services.serving --model NAME [--alias production] [--port 8080]``: an HTTP model server."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from services.serving.bootstrap import bootstrap, read_settings
from services.serving.entrypoints.http import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.serving", description=__doc__)
    parser.add_argument("--model", required=True, help="Registered model to serve.")
    parser.add_argument("--alias", default="production", help="Alias to follow (default: production).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-publish", action="store_true", help="Do not publish predictions to Kafka.")
    args = parser.parse_args(argv)

    settings = read_settings()
    logging.basicConfig(level=settings.log_level)
    app_name = f"serving-{args.model}-{args.alias}-{args.port}"
    server = bootstrap(
        settings,
        model_name=args.model,
        alias=args.alias,
        publish_as=None if args.no_publish else app_name,
        record_usage=True,
    )
    try:
        uvicorn.run(create_app(server), host=args.host, port=args.port, log_level=settings.log_level.lower())
    finally:
        server.close()


if __name__ == "__main__":
    main()
