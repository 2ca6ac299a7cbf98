"""``driftloop bench ...``: benchmarks that print figures and end with one JSON line."""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks: each prints figures and ends with one JSON line.", no_args_is_help=True)


@app.command("events")
def events(n: int = typer.Option(200_000, help="Events to round-trip.")) -> None:
    """Prediction events encoded + decoded + validated per second on one core."""
    from shared.bench.events import main

    main(n)
