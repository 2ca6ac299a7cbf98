"""``python -m services.monitor``: run one monitor worker process (several share the work by partition)."""

from __future__ import annotations

import argparse
from pathlib import Path

from faust import Worker

from services.monitor.app import create_app
from services.monitor.profiles import load_profiles_file
from shared.settings import Settings


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
    profiles = load_profiles_file(args.profiles, settings.drift_thresholds) if args.profiles else None
    app = create_app(settings, web_port=args.web_port or settings.monitor_web_port, profiles=profiles)
    Worker(app, loglevel=args.loglevel or settings.log_level.lower()).execute_from_commandline()


if __name__ == "__main__":
    main()
