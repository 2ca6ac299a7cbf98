"""``driftloop settings``: every setting, its env variable, default and meaning (the README's table)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import BaseModel, Secret, SecretStr

from shared.settings import Settings

TABLE_START = "<!-- settings-table -->"
TABLE_END = "<!-- /settings-table -->"


def settings_table() -> str:
    """A Markdown table of every setting, generated from the Settings model so docs cannot drift."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        if isinstance(
            value, SecretStr | Secret
        ):  # the shipped default is documented, so users know to change it
            value = value.get_secret_value()
        if isinstance(value, BaseModel | dict) and value:
            value = json.dumps(value.model_dump() if isinstance(value, BaseModel) else value)
        default = str(value).replace(str(Path.home()), "~") if value not in ("", None, {}) else "(empty)"
        lines.append(f"| `DRIFTLOOP_{name.upper()}` | `{default}` | {field.description or ''} |")
    return "\n".join(lines)


def update_readme(path: Path) -> bool:
    """Rewrite the table between the ``settings-table`` markers of ``path``; True when it changed."""
    text = path.read_text()
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no {TABLE_START} ... {TABLE_END} markers")
    updated = text[: start + len(TABLE_START)] + "\n" + settings_table() + "\n" + text[end:]
    if updated != text:
        path.write_text(updated)
    return updated != text


def show_settings(
    markdown: bool = typer.Option(False, help="Print the Markdown table for the README."),
    update: Path | None = typer.Option(None, help="Rewrite the settings table inside this Markdown file."),
) -> None:
    """Print the settings in force (values from env and .env), or the documentation table."""
    if update is not None:
        changed = update_readme(update)
        typer.echo(f"{update}: settings table {'updated' if changed else 'already current'}")
        return
    if markdown:
        typer.echo(settings_table())
        return
    current = Settings()
    secrets = set(Settings.secret_fields())
    for name in Settings.model_fields:
        value = getattr(current, name)
        if name in secrets:
            value = "***" if value.get_secret_value() else ""
        typer.echo(f"DRIFTLOOP_{name.upper()}={value}")
