"""``driftloop infra up|down|status``: the local Kafka broker, embedded ClickHouse server and S3 server."""

from __future__ import annotations

import typer

from shared.infra.process import InfraError
from shared.infra.stack import Component, ComponentStatus, LocalStack, default_components
from shared.settings import Settings
from shared.topics import topic_names

app = typer.Typer(help="Start, stop and inspect the local infrastructure.", no_args_is_help=True)

COMPONENTS_ARG = typer.Argument(
    None, help="Components to act on (default: kafka and clickhouse, s3 with --s3)."
)


def _selected(components: list[Component] | None, s3: bool) -> list[Component]:
    return list(components) if components else default_components(s3)


def _echo(statuses: list[ComponentStatus]) -> None:
    for status in statuses:
        typer.echo(status.line())


@app.command()
def up(
    components: list[Component] | None = COMPONENTS_ARG,
    s3: bool = typer.Option(False, "--s3", help="Also start the local S3 server (for s3:// artifacts)."),
) -> None:
    """Start the local servers that are not running yet and create the topics; returns when all are ready.

    Servers keep running in the background until `driftloop infra down`.
    """
    settings = Settings()
    stack = LocalStack(settings)
    try:
        statuses = stack.up(_selected(components, s3), report=lambda st: typer.echo(st.line()))
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if Component.KAFKA in {st.component for st in statuses if st.up}:
        names = ", ".join(topic_names(settings.topic_prefix).all())
        typer.echo(f"topics     ready ({settings.kafka_partitions} partitions): {names}")
    if not all(st.up for st in statuses):
        typer.echo("error: some components are not reachable (see above)", err=True)
        raise typer.Exit(1)


@app.command()
def down(components: list[Component] | None = COMPONENTS_ARG) -> None:
    """Stop the servers `driftloop infra up` (or a command that crashed) started; external ones are left."""
    try:
        _echo(LocalStack(Settings()).down(components or list(Component)))
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def status(components: list[Component] | None = COMPONENTS_ARG) -> None:
    """Print where each component listens, whether it answers, its pid and its log."""
    _echo(LocalStack(Settings()).status(components or list(Component)))
