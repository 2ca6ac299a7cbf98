"""Reads what ``driftloop cost`` prints from ClickHouse: the weekly view, the runs and the accuracy windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from driftloop.cost import sql
from driftloop.cost.ledger import (
    AccuracyWindow,
    CostLine,
    Payoff,
    Prices,
    Run,
    WeekUsage,
    model_totals,
    weekly_costs,
)
from driftloop.cost.ledger import payoffs as compute_payoffs


@dataclass(frozen=True)
class CostReport:
    weeks: list[CostLine]
    totals: list[CostLine]
    payoffs: list[Payoff]


def ensure_view(client: Any, database: str, retention_days: int = 365) -> None:
    """The tables the view reads (kept if they exist), then the view itself (replaced: it holds no data)."""
    for ddl in sql.tables_ddl(retention_days):
        client.command(ddl)
    client.command(sql.model_costs_weekly_ddl(database))


def read_weeks(client: Any, since: date, model: str = "") -> list[WeekUsage]:
    result = client.query(sql.WEEKS, parameters={"since": since, "model": model})
    return [WeekUsage(**dict(zip(sql.COLUMNS, row, strict=True))) for row in result.result_rows]


def read_runs(client: Any, model: str = "") -> list[Run]:
    rows = client.query(sql.RUNS, parameters={"model": model}).result_rows
    return [
        Run(name, started, finished, bool(promoted), version, float(cpu), float(artifacts))
        for name, started, finished, promoted, version, cpu, artifacts in rows
    ]


def read_accuracy(client: Any, model: str = "") -> list[AccuracyWindow]:
    rows = client.query(sql.ACCURACY, parameters={"model": model}).result_rows
    return [AccuracyWindow(name, str(version), start, float(value)) for name, version, start, value in rows]


def cost_report(client: Any, prices: Prices, since: date, model: str = "", n_windows: int = 3) -> CostReport:
    """Weekly lines since ``since``, totals over them, and every promotion since then with its payoff."""
    weeks = read_weeks(client, since, model)
    payoffs = [
        p
        for p in compute_payoffs(read_runs(client, model), read_accuracy(client, model), prices, n_windows)
        if p.promoted_at.date() >= since
    ]
    return CostReport(weekly_costs(weeks, prices), model_totals(weeks, prices), payoffs)
