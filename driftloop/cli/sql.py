"""``driftloop sql "SELECT ..."``: plain ClickHouse SQL against the configured server, printed for people or tools.

Starts nothing: analytics read what the running system wrote. The query goes through the same
clickhouse-connect adapter the services use, so what works here works in a notebook or a dashboard.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import logging
import re
import sys
import uuid
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import typer

from shared.clickhouse import clickhouse_client
from shared.settings import Settings


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


class SqlError(RuntimeError):
    """The query could not run; the message is what the user should read (ClickHouse's own words)."""


app = typer.Typer(help="Run ClickHouse SQL against the configured server.", add_completion=False)


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``name=value`` pairs as the values for ClickHouse ``{name:Type}`` placeholders (the server casts)."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SqlError(f"--param {pair!r} is not name=value")
        params[name.strip()] = value
    return params


def _plain(value: Any) -> Any:
    """A result cell as a JSON/CSV-friendly value: dates as ISO text, decimals and UUIDs as text."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | bytes | bytearray):
        return value.decode(errors="replace") if isinstance(value, bytes | bytearray) else str(value)
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    plain = _plain(value)
    return (
        plain
        if isinstance(plain, str)
        else json.dumps(plain)
        if isinstance(plain, dict | list)
        else str(plain)
    )


def render_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns aligned under their names, numbers right-aligned, with the row count at the end."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [
        bool(rows) and all(isinstance(r[i], int | float | decimal.Decimal) or r[i] is None for r in rows)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(columns)), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def render_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else _cell(v) for v in row])
    return buf.getvalue().rstrip("\n")


def render_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """One JSON array of row objects, so ``| jq`` and scripts read it without knowing the columns."""
    return json.dumps([dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in rows])


RENDERERS = {OutputFormat.TABLE: render_table, OutputFormat.CSV: render_csv, OutputFormat.JSON: render_json}


def clickhouse_message(exc: Exception) -> str:
    """ClickHouse's own error text without clickhouse-connect's wrapper and the trailing URL."""
    text = str(exc)
    _, sep, server = text.partition("server response: ")
    text = server if sep else text
    return re.sub(r"\s*\(for url [^)]*\)\s*$", "", text).strip()


def run_query(
    settings: Settings, query: str, params: dict[str, str]
) -> tuple[list[str], list[Sequence[Any]]]:
    """Column names and rows of ``query``; raises SqlError with a message meant for the user."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    try:
        client = clickhouse_client(settings, create_database=False)
    except OperationalError as exc:
        raise SqlError(
            f"cannot reach ClickHouse at {settings.clickhouse_url}; start the local stack with "
            "`driftloop infra up` (or `driftloop up`), or set DRIFTLOOP_CLICKHOUSE_URL to your server"
        ) from exc
    except DatabaseError as exc:
        raise SqlError(f"{clickhouse_message(exc)} (database {settings.clickhouse_database!r})") from exc
    try:
        result = client.query(query, parameters=params or None)
        columns, rows = list(result.column_names), list(result.result_rows)
        if not columns and returns_rows(query):
            columns = _columns_of_empty(client, query, params)
    except DatabaseError as exc:
        raise SqlError(clickhouse_message(exc)) from exc
    except OperationalError as exc:
        raise SqlError(f"lost ClickHouse at {settings.clickhouse_url}: {exc}") from exc
    finally:
        client.close()
    return columns, rows


READ_STATEMENTS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"}


def returns_rows(query: str) -> bool:
    """True for a statement that answers with rows (possibly none), False for DDL, INSERT and the like.

    >>> returns_rows("/* recent */ (select 1)"), returns_rows("with 1 as x select x"), returns_rows("DROP t")
    (True, True, False)
    """
    text = re.sub(r"(--[^\n]*\n|/\*.*?\*/|\s|\()+", " ", query + "\n", flags=re.S).strip()
    return text.split(" ", 1)[0].upper() in READ_STATEMENTS


def _columns_of_empty(client: Any, query: str, params: dict[str, str]) -> list[str]:
    """The column names of a SELECT that answered no rows (the server then sends no header block)."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    statement = query.strip().rstrip(";")
    if not re.match(r"\s*\(?\s*(SELECT|WITH)\b", statement, flags=re.I):
        return []
    try:
        described = client.query(f"DESCRIBE TABLE ({statement})", parameters=params or None)
    except DatabaseError:  # e.g. a FORMAT clause: the rows are still none, only the header is unknown
        return []
    return [str(row[0]) for row in described.result_rows]


@app.command()
def sql(
    query: str = typer.Argument(..., help="The SQL to run; '-' reads it from standard input."),
    output: OutputFormat = typer.Option(OutputFormat.TABLE, "--format", "-f", help="How to print rows."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="name=value for a {name:Type} placeholder; repeat for several."
    ),
) -> None:
    """Run ClickHouse SQL on the configured server (DRIFTLOOP_CLICKHOUSE_URL) and print the rows."""
    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)  # our message says it better
    settings = Settings()
    text = sys.stdin.read() if query == "-" else query
    try:
        columns, rows = run_query(settings, text, parse_params(param))
    except SqlError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if not columns and not returns_rows(text):  # DDL, INSERT ... SELECT: nothing to print but that it worked
        typer.echo("ok", err=output is not OutputFormat.TABLE)
        return
    if not columns:  # an empty answer whose columns could not be named
        typer.echo(
            "[]" if output is OutputFormat.JSON else "(0 rows)" if output is OutputFormat.TABLE else ""
        )
        return
    typer.echo(RENDERERS[output](columns, rows))


if __name__ == "__main__":
    app()
