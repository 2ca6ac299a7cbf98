"""``driftloop cost``: what each model cost per week (training, serving, monitoring, storage) and whether
retraining paid off (cost per promoted version next to the accuracy it recovered)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import typer

from driftloop.cli.errors import exit_unreachable
from driftloop.cli.sql import OutputFormat, clickhouse_message, render_csv, render_json, render_table
from driftloop.cost.ledger import CostLine, Payoff, Prices, since_date
from driftloop.cost.report import CostReport, cost_report, ensure_view
from shared.clickhouse import clickhouse_client
from shared.settings import Settings

MIB = 1024 * 1024

WEEK_COLUMNS = [
    "model", "week", "runs", "promoted", "rejected", "train_cpu_s", "predictions", "served", "serve_cpu_s",
    "monitor_cpu_s", "ch_mib", "artifact_mib", "compute_cost", "storage_cost_month",
]  # fmt: skip
PAYOFF_COLUMNS = [
    "model", "version", "promoted_at", "runs", "train_cpu_s", "artifact_mib", "cost", "accuracy_before",
    "accuracy_after", "recovered", "cost_per_point",
]  # fmt: skip


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def week_cells(line: CostLine, week: bool = True) -> list[Any]:
    u = line.usage
    return [
        u.model_name, u.week.isoformat() if week else "total", u.training_runs, u.promoted_runs,
        u.rejected_runs, _r(u.training_cpu_s, 1), u.predictions, u.served_requests, _r(u.serving_cpu_s, 1),
        _r(u.monitor_cpu_s, 1), _r(u.clickhouse_bytes / MIB), _r(u.artifact_bytes / MIB),
        _r(line.compute_cost, 4), _r(line.storage_cost_month, 4),
    ]  # fmt: skip


def payoff_cells(p: Payoff) -> list[Any]:
    return [
        p.model_name, p.version, p.promoted_at.strftime("%Y-%m-%d %H:%M"), p.runs, _r(p.training_cpu_s, 1),
        _r(p.artifact_bytes / MIB), _r(p.cost, 4), _r(p.accuracy_before, 3), _r(p.accuracy_after, 3),
        _r(p.recovered, 3), _r(p.cost_per_point, 4),
    ]  # fmt: skip


def render(report: CostReport, output: OutputFormat) -> str:
    """The weekly table (a total line per model after its weeks) and the payoff table."""
    weeks: list[Sequence[Any]] = []
    for total in report.totals:
        weeks += [week_cells(w) for w in report.weeks if w.usage.model_name == total.usage.model_name]
        weeks.append(week_cells(total, week=False))
    payoffs = [payoff_cells(p) for p in report.payoffs]
    if output is OutputFormat.JSON:
        return json.dumps(
            {
                "weeks": json.loads(render_json(WEEK_COLUMNS, weeks)),
                "payoffs": json.loads(render_json(PAYOFF_COLUMNS, payoffs)),
            }
        )
    if output is OutputFormat.CSV:
        return render_csv(WEEK_COLUMNS, weeks) + "\n\n" + render_csv(PAYOFF_COLUMNS, payoffs)
    return (
        "Cost per model and week (ch_mib: ClickHouse bytes shared out by rows; storage_cost_month: keeping "
        "them a month)\n"
        + render_table(WEEK_COLUMNS, weeks)
        + "\n\nDoes retraining pay off? Cost of each promoted version (its run and the rejected ones before "
        "it) next to the accuracy it recovered\n" + render_table(PAYOFF_COLUMNS, payoffs)
    )


def cost(
    model: str = typer.Option("", "--model", "-m", help="Only this model (default: every model)."),
    since: str = typer.Option("12w", "--since", help="From this date (2026-01-05) or span back (30d, 8w)."),
    output: OutputFormat = typer.Option(OutputFormat.TABLE, "--format", "-f", help="How to print."),
    windows: int = typer.Option(
        3, "--windows", min=1, help="Accuracy windows before and after a promotion that are compared."
    ),
) -> None:
    """Cost per model and week, priced with DRIFTLOOP_COST_CPU_HOUR and DRIFTLOOP_COST_GB_MONTH, and what
    each promoted version cost next to the accuracy it recovered."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
    settings = Settings()
    try:
        start = since_date(since, datetime.now(UTC).date())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    prices = Prices(cpu_hour=settings.cost_cpu_hour, gb_month=settings.cost_gb_month)
    try:
        client = clickhouse_client(settings)
    except OperationalError as exc:
        exit_unreachable(
            "ClickHouse", settings.clickhouse_url, exc,
            "start the local stack with `driftloop infra up` (or `driftloop up`), or set DRIFTLOOP_CLICKHOUSE_URL",
        )  # fmt: skip
    try:
        ensure_view(client, settings.clickhouse_database, settings.monitor_retention_days)
        report = cost_report(client, prices, start, model, windows)
    except DatabaseError as exc:
        typer.echo(f"error: {clickhouse_message(exc)}", err=True)
        raise typer.Exit(1) from exc
    finally:
        client.close()
    typer.echo(render(report, output))
