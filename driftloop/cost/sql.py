"""The ``model_costs_weekly`` view and the queries behind ``driftloop cost``.

The view reads the tables of three services (the monitor's, the trainer's ``training_runs``, the model
servers' ``serving_usage``) and ``system.parts``, so no service owns it: ``driftloop cost`` creates it (plain
view, ``CREATE OR REPLACE``, no data of its own) and the tables it reads if they are not there yet.
"""

from __future__ import annotations

from services.monitor.domain.tables import (
    DATA_QUALITY,
    DEAD_LETTERS,
    DRIFT_EVENTS,
    DRIFT_TESTS,
    LABELS,
    MODEL_EVENTS,
    MONITOR_STATS,
    PREDICTIONS,
    WINDOW_METRICS,
)
from services.serving.domain.usage import serving_usage_ddl
from services.trainer.domain.run_table import training_runs_ddl

VIEW = "model_costs_weekly"

ROWS_OF_A_MODEL = (
    ("predictions", "occurred_at"),
    ("labels", "occurred_at"),
    ("window_metrics", "window_start"),
    ("drift_tests", "window_start"),
    ("drift_events", "occurred_at"),
    ("data_quality", "interval_start"),
    ("dead_letters", "occurred_at"),
    ("model_events", "occurred_at"),
    ("training_runs", "started_at"),
    ("serving_usage", "at"),
)
"""Every table with a ``model_name``, and the time that puts a row in a week; their bytes are shared out."""

COLUMNS = (
    "model_name",
    "week",
    "training_runs",
    "promoted_runs",
    "rejected_runs",
    "training_cpu_s",
    "predictions",
    "labels",
    "served_requests",
    "serving_cpu_s",
    "monitor_cpu_s",
    "clickhouse_bytes",
    "artifact_bytes",
)


def tables_ddl(retention_days: int = 365) -> list[str]:
    """The tables the view reads, each in its owner's DDL (``IF NOT EXISTS``: an existing one is kept)."""
    monitor = (PREDICTIONS, LABELS, WINDOW_METRICS, DRIFT_TESTS, DRIFT_EVENTS, DATA_QUALITY, DEAD_LETTERS,
               MODEL_EVENTS, MONITOR_STATS)  # fmt: skip
    return [*(t.ddl(retention_days) for t in monitor), training_runs_ddl(), serving_usage_ddl()]


def _source(model: str, week: str, **values: str) -> str:
    """One branch of the view's UNION: the given columns, every other one zero."""
    cells = [f"{model} AS model_name", f"{week} AS week"]
    for column in COLUMNS[2:]:
        if column == "rejected_runs":
            continue
        zero = "toFloat64(0)" if column.endswith(("_s", "_bytes")) else "toUInt64(0)"
        kind = "toFloat64" if column.endswith(("_s", "_bytes")) else "toUInt64"
        cells.append(f"{kind}({values[column]}) AS {column}" if column in values else f"{zero} AS {column}")
    return "SELECT " + ", ".join(cells)


def model_costs_weekly_ddl(database: str, view: str = VIEW) -> str:
    """Per model and week (Monday, UTC): the resources it used; see docs/analytics.md for each column.

    ClickHouse bytes: the tables are partitioned by month, not by model, so each table's bytes on disk
    (``system.parts``) are shared out by the model's share of its rows. Monitor CPU: the workers'
    cumulative ``process_cpu_s`` samples (a restart starts again from 0) summed per week, shared out by the
    model's share of the week's events (predictions and labels).
    """
    rows = " UNION ALL ".join(
        f"SELECT '{table}' AS tbl, model_name, toMonday({at}) AS week, count() AS n FROM {table} "
        f"GROUP BY model_name, week"
        for table, at in ROWS_OF_A_MODEL
    )
    events = (
        "SELECT model_name, week, sum(n) AS events FROM ("
        "SELECT model_name, toMonday(occurred_at) AS week, count() AS n FROM predictions FINAL "
        "GROUP BY model_name, week UNION ALL "
        "SELECT model_name, toMonday(occurred_at) AS week, count() AS n FROM labels FINAL "
        "GROUP BY model_name, week) GROUP BY model_name, week"
    )
    monitor_cpu = (
        "SELECT toMonday(at) AS week, sum(if(value >= previous, value - previous, value)) AS cpu_s FROM ("
        "SELECT at, value, lagInFrame(value, 1, 0.) OVER (PARTITION BY worker ORDER BY at "
        "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS previous "
        f"FROM {MONITOR_STATS.name} WHERE metric = 'process_cpu_s') GROUP BY week"
    )
    sources = [
        _source(
            "model_name", "toMonday(started_at)", training_runs="count()", promoted_runs="countIf(promoted = 1)",
            training_cpu_s="sum(cpu_s)", artifact_bytes="sum(artifact_bytes)",
        ) + " FROM training_runs FINAL GROUP BY model_name, week",
        _source("model_name", "toMonday(occurred_at)", predictions="count()")
        + " FROM predictions FINAL GROUP BY model_name, week",
        _source("model_name", "toMonday(occurred_at)", labels="count()")
        + " FROM labels FINAL GROUP BY model_name, week",
        _source("model_name", "toMonday(at)", served_requests="sum(requests)", serving_cpu_s="sum(cpu_s)")
        + " FROM serving_usage GROUP BY model_name, week",
        _source("r.model_name", "r.week", clickhouse_bytes="r.n * p.bytes_per_row")
        + f" FROM ({rows}) AS r INNER JOIN (SELECT table AS tbl, sum(bytes_on_disk) / sum(rows) AS bytes_per_row"
        f" FROM system.parts WHERE active AND database = '{database}' GROUP BY table HAVING sum(rows) > 0)"
        " AS p ON r.tbl = p.tbl",
        _source("e.model_name", "e.week", monitor_cpu_s="m.cpu_s * e.events / t.events")
        + f" FROM ({events}) AS e INNER JOIN (SELECT week, sum(events) AS events FROM ({events}) GROUP BY week)"
        f" AS t ON e.week = t.week INNER JOIN ({monitor_cpu}) AS m ON e.week = m.week",
    ]  # fmt: skip
    summed = [column for column in COLUMNS[2:] if column != "rejected_runs"]
    sums = ", ".join(f"sum({column}) AS {column}" for column in summed)
    outer = ", ".join(
        "training_runs - promoted_runs AS rejected_runs" if column == "rejected_runs" else column
        for column in COLUMNS
    )
    return (
        f"CREATE OR REPLACE VIEW {view} AS SELECT {outer} FROM (SELECT model_name, week, {sums} FROM ("
        + " UNION ALL ".join(sources)
        + ") GROUP BY model_name, week)"
    )


WEEKS = f"""
SELECT {", ".join(COLUMNS)}
FROM {VIEW}
WHERE week >= toMonday({{since:Date}}) AND ({{model:String}} = '' OR model_name = {{model:String}})
ORDER BY model_name, week
"""

RUNS = """
SELECT model_name, started_at, finished_at, promoted, model_version, cpu_s, artifact_bytes
FROM training_runs FINAL
WHERE ({model:String} = '' OR model_name = {model:String})
ORDER BY model_name, started_at
"""

ACCURACY = """
SELECT model_name, model_version, window_start, value
FROM window_metrics FINAL
WHERE metric = 'accuracy' AND ({model:String} = '' OR model_name = {model:String})
ORDER BY model_name, window_start
"""
