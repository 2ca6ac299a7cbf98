"""The ``driftloop`` command: one entry point whose sub-commands live one concept per module."""

from __future__ import annotations

import typer

from driftloop.cli import bench, infra, models, schema, sql, system
from driftloop.cli.config import show_settings
from driftloop.cli.cost import cost
from driftloop.cli.demo import demo
from driftloop.cli.train import train

app = typer.Typer(
    help="Driftloop: monitor production models, detect drift, retrain, register and serve.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(infra.app, name="infra")
app.add_typer(schema.app, name="schema")
app.add_typer(bench.app, name="bench")
app.add_typer(models.app, name="models")
app.command("settings")(show_settings)
app.command("demo")(demo)
app.command("up")(system.up)
app.command("down")(system.down)
app.command("status")(system.status)
app.command("logs")(system.logs)
app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(system.run)
app.command("sql")(sql.sql)
app.command("train")(train)
app.command("cost")(cost)


def main() -> None:
    app()
