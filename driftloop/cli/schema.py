"""``driftloop schema export``: the event contract as JSON Schema files, for producers in any language."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="The event contract.", no_args_is_help=True)


@app.command("export")
def export(
    out: Path = typer.Option(Path("schemas"), help="Folder to write <event_type>.schema.json into."),
) -> None:
    """Write one JSON Schema file per event type."""
    from shared.events import event_json_schemas

    out.mkdir(parents=True, exist_ok=True)
    for name, schema in sorted(event_json_schemas().items()):
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        typer.echo(f"wrote {path}")
