"""``python -m driftloop.clickhouse_server --host H --port P --path DIR``: the embedded ClickHouse server.

Its one user and password come from DRIFTLOOP_CLICKHOUSE_USER / DRIFTLOOP_CLICKHOUSE_PASSWORD in the
environment (``default`` and an empty password when unset), never from the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from driftloop.clickhouse_server import auth
from driftloop.clickhouse_server.engine import DEFAULT_SESSIONS
from driftloop.clickhouse_server.server import run
from shared.settings import is_loopback


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="ClickHouse HTTP interface served from chDB.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--path", type=Path, required=True, help="data folder (created if missing)")
    parser.add_argument(
        "--sessions",
        type=int,
        default=DEFAULT_SESSIONS,
        help="statements that may run at once (chDB sessions)",
    )
    args = parser.parse_args(argv)
    credentials = auth.configured()
    if not credentials.password and not is_loopback(args.host):
        parser.error(
            f"refusing to listen on {args.host} with an empty password: anyone who reaches it could read and "
            f"change every table. Set {auth.PASSWORD_ENV} (and {auth.USER_ENV}), or listen on 127.0.0.1."
        )
    run(args.host, args.port, args.path.resolve(), args.sessions, credentials)


if __name__ == "__main__":
    main()
