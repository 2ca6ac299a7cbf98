"""``driftloop demo``: the closed loop on real drifting data, live in the terminal, with a report at the end."""

from __future__ import annotations

from pathlib import Path

import typer

from shared.settings import Settings


def demo(
    fast: bool = typer.Option(
        False, "--fast", help="End 600 answers after the swap instead of 1,500 (about 20 s shorter)."
    ),
    rate: float | None = typer.Option(
        None, "--rate", min=1.0, help="Requests per second of the simulated app (default 40)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="End with the summary as one JSON object on the last line."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for report.html, accuracy-drift.png and the console's screenshots (default DATA_DIR/demo-report).",
    ),
    open_console: bool = typer.Option(
        False,
        "--open",
        help="Open the web console in a browser as soon as it is up (its URL is always printed).",
    ),
) -> None:
    """Start a private Driftloop system, let a simulated app's data drift, and show the loop repair it.

    Exits 1 when the loop did not close (no drift detected after the change point, no new version served,
    or accuracy not within 2 points of the oracle); see docs/demo.md.
    """
    from driftloop.demo.run import DemoOptions, run_demo
    from driftloop.process import InfraError

    try:
        result = run_demo(
            Settings(),
            DemoOptions(fast=fast, rate=rate, out_dir=out, open_console=open_console),
            echo=typer.echo,
        )
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    summary = result.summary
    typer.echo("")
    typer.echo("Summary")
    for line in summary.lines():
        typer.echo(f"  {line}")
    typer.echo(f"report: {summary.report_path}")
    if result.png_path is not None:
        typer.echo(f"plot:   {result.png_path}")
    for shot in result.screenshots:
        typer.echo(f"console screenshot: {shot}")
    if json_output:
        typer.echo(summary.json_line())
    if not summary.loop_closed:
        raise typer.Exit(1)
