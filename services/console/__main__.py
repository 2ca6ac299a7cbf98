"""``python -m services.console``: the web console (models, drift, training runs, dead letters).

Stateless: run as many replicas as you like behind one address.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from services.console.bootstrap import bootstrap
from services.console.entrypoints.http import create_app

log = logging.getLogger("services.console")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Driftloop's web console.")
    parser.add_argument(
        "--host", default=None, help="Default: DRIFTLOOP_CONSOLE_HOST (0.0.0.0 in a container)."
    )
    parser.add_argument("--port", type=int, default=None, help="Default: DRIFTLOOP_CONSOLE_PORT.")
    parser.add_argument("--loglevel", default=None)
    args = parser.parse_args()
    wiring = bootstrap(host=args.host)
    settings = wiring.settings
    level = (args.loglevel or settings.log_level).upper()
    logging.basicConfig(
        level=level, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
    )
    host = args.host or settings.console_host
    port = args.port or settings.console_port
    log.info("web console on http://%s:%d, reading the registry at %s", host, port, settings.registry_url)
    app = create_app(wiring.console, secure_cookies=wiring.secure_cookies)
    uvicorn.run(app, host=host, port=port, log_level=level.lower(), access_log=False)


if __name__ == "__main__":
    main()
