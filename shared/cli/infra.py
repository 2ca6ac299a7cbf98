"""``driftloop infra up|down|status``: the local Kafka broker, embedded ClickHouse server and S3 server."""

from __future__ import annotations

import typer

app = typer.Typer(help="Start, stop and inspect the local infrastructure.", no_args_is_help=True)
