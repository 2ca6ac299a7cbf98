"""``driftloop infra up|down|status``: the local Kafka broker, embedded ClickHouse server and S3 server."""

from __future__ import annotations

import typer

from driftloop.infra.progress import on_stderr
from driftloop.infra.services import Supervisor, dependents, service_table
from driftloop.infra.stack import Component, ComponentStatus, LocalStack, default_components
from driftloop.process import InfraError
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
    stack = LocalStack(settings, progress=on_stderr())  # what a start waits for, on stderr
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


def _warn_dependents(settings: Settings, stack: LocalStack, components: list[Component]) -> None:
    """Name the running services that need what is about to stop; they wait and retry, they don't exit."""
    recorded = stack.state.load()
    stopping = [c for c in components if c in recorded and stack.endpoint(c).local]
    if not stopping:
        return
    table = service_table(settings)
    running = [st.name for st in Supervisor(settings, table).status() if st.up]
    for component, names in dependents(table, running, stopping).items():
        typer.echo(
            f"warning: stopping {component.value} breaks running services: {', '.join(names)} "
            "(they cannot do their work until it is back; `driftloop down` stops everything)",
            err=True,
        )


@app.command()
def down(components: list[Component] | None = COMPONENTS_ARG) -> None:
    """Stop the servers `driftloop infra up` (or a command that crashed) started; external ones are left.

    Running services that need a server being stopped are named first (a warning, not a refusal), and
    the supervisor of `driftloop up` does not start a server stopped this way again.
    """
    settings = Settings()
    stack = LocalStack(settings)
    selected = components or list(Component)
    try:
        _warn_dependents(settings, stack, selected)
        _echo(stack.down(selected))
    except InfraError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def status(components: list[Component] | None = COMPONENTS_ARG) -> None:
    """Print where each component listens, whether it answers, its pid and its log."""
    _echo(LocalStack(Settings()).status(components or list(Component)))
