"""``driftloop cost`` on the real engine: the ``model_costs_weekly`` view and the command's tables on a seeded
data set whose sums are worked out by hand (the comments), serving usage written by the model server's adapter."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from driftloop.cli.main import app
from driftloop.cost import sql
from driftloop.cost.ledger import Prices
from driftloop.cost.report import cost_report, ensure_view, read_weeks
from services.serving.adapters.usage import UsageTable
from services.serving.bootstrap import bootstrap
from services.serving.domain.usage import Reading, usage_row
from services.trainer.domain.run_table import RUN_COLUMNS
from shared.settings import Settings
from tests.fixtures.clickhouse import ClickHouseServer
from tests.unit.serving_fakes import OneVersionRegistry, serve_churn

pytestmark = pytest.mark.integration

_TODAY = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
T = _TODAY - timedelta(days=_TODAY.weekday() + 14)
"""10:00 on the Monday two weeks ago: inside every table's TTL (monitor_stats keeps 30 days)."""
W1, W2 = T.date(), (T + timedelta(days=7)).date()


def at(hours: float) -> datetime:
    return T + timedelta(hours=hours)


def _predictions(model: str, n: int, when: datetime, version: str = "1") -> list[list[Any]]:
    return [
        [uuid.uuid4(), model, version, f"{model}-{when:%j%H}-{i}", when + timedelta(seconds=i), "1", when]
        for i in range(n)
    ]


def _labels(model: str, n: int, when: datetime) -> list[list[Any]]:
    return [[uuid.uuid4(), model, f"{model}-{i}", "1", when, when] for i in range(n)]


def _run(
    model: str, started: datetime, promoted: int, cpu_s: float, artifacts: int, version: int | None
) -> list[Any]:
    values = {
        "run_id": uuid.uuid4(), "model_name": model, "status": "finished" if version else "rejected",
        "reason": "drift", "model_version": version, "promoted": promoted, "metric": "accuracy",
        "started_at": started, "finished_at": started + timedelta(minutes=30), "wall_s": 1800.0, "cpu_s": cpu_s,
        "peak_memory_mb": 100.0, "rows": 1000, "bytes_read": 0, "artifact_bytes": artifacts, "detail": "",
    }  # fmt: skip
    return [values.get(column) for column in RUN_COLUMNS]


def _accuracy(model: str, version: str, start: datetime, value: float) -> list[Any]:
    return [model, version, start, start + timedelta(minutes=5), "accuracy", "", value, start]


PREDICTION_COLUMNS = [
    "event_id",
    "model_name",
    "model_version",
    "prediction_id",
    "occurred_at",
    "prediction",
    "ingested_at",
]
LABEL_COLUMNS = ["event_id", "model_name", "prediction_id", "label", "occurred_at", "ingested_at"]
METRIC_COLUMNS = [
    "model_name",
    "model_version",
    "window_start",
    "window_end",
    "metric",
    "feature",
    "value",
    "computed_at",
]


def seed(client: Any) -> None:
    predictions = (
        _predictions("churn", 8, at(1)) + _predictions("fraud", 6, at(2)) + _predictions("tiny", 2, at(3))
        + _predictions("churn", 2, at(24 * 7 + 1), version="2")
    )  # fmt: skip
    client.insert("predictions", predictions, column_names=PREDICTION_COLUMNS)
    client.insert("predictions", predictions[:1], column_names=PREDICTION_COLUMNS)  # a replay: counted once
    client.insert("labels", _labels("churn", 4, at(4)), column_names=LABEL_COLUMNS)
    runs = [
        _run("churn", at(5), 0, 50.0, 0, None),  # rejected by validation
        _run("churn", at(6), 1, 100.0, 1000, 2),  # promoted: v2 from 06:30
        _run("churn", at(24 * 7 + 2), 0, 30.0, 500, 3),  # trained, not promoted
    ]
    client.insert("training_runs", runs, column_names=RUN_COLUMNS)
    client.insert("training_runs", runs[1:2], column_names=RUN_COLUMNS)  # a replay: counted once
    windows = [
        _accuracy("churn", "1", at(4), 0.8), _accuracy("churn", "1", at(5), 0.6), _accuracy("churn", "1", at(6), 0.55),
        _accuracy("churn", "2", at(7), 0.9), _accuracy("churn", "2", at(8), 0.85), _accuracy("churn", "2", at(9), 0.8),
    ]  # fmt: skip
    client.insert("window_metrics", windows, column_names=METRIC_COLUMNS)
    stats = [
        [at(1), "w1", "process_cpu_s", 10.0],  # first sample: 10 s since the worker started
        [at(2), "w1", "events_per_s", 500.0],  # not CPU: ignored
        [at(3), "w1", "process_cpu_s", 40.0],  # +30
        [at(3), "w2", "process_cpu_s", 20.0],  # another worker: 20 -> week 1: 60
        [at(24 * 7 + 1), "w1", "process_cpu_s", 50.0],  # +10
        [at(24 * 7 + 2), "w1", "process_cpu_s", 5.0],  # restarted: 5 since -> week 2: 15
    ]
    client.insert("monitor_stats", stats, column_names=["at", "worker", "metric", "value"])


def write_usage(server: ClickHouseServer, database: str) -> None:
    """Serving usage as a model server records it: through its own adapter, creating the table if needed."""
    import clickhouse_connect

    table = UsageTable(
        lambda: clickhouse_connect.get_client(host=server.host, port=server.port, database=database)
    )
    start = Reading(0, 0, 0.0, 0.0)
    table.write(usage_row(start, Reading(5, 5, 1.5, 60.0), at(1), "churn", "production", "h:1"))
    table.write(usage_row(start, Reading(3, 4, 0.5, 60.0), at(2), "churn", "production", "h:2"))
    table.write(usage_row(start, Reading(2, 2, 0.25, 60.0), at(24 * 7 + 1), "churn", "production", "h:1"))
    table.close()


@pytest.fixture
def seeded(clickhouse_server: ClickHouseServer, clickhouse_client: Any) -> Iterator[Any]:
    database = str(clickhouse_client.database)
    ensure_view(clickhouse_client, database)
    seed(clickhouse_client)
    write_usage(clickhouse_server, database)
    yield clickhouse_client


def test_the_view_sums_each_resource_per_model_and_week(seeded: Any) -> None:
    weeks = {(w.model_name, w.week): w for w in read_weeks(seeded, W1 - timedelta(days=7))}
    assert set(weeks) == {("churn", W1), ("fraud", W1), ("tiny", W1), ("churn", W2)}
    c1, c2, fraud, tiny = weeks["churn", W1], weeks["churn", W2], weeks["fraud", W1], weeks["tiny", W1]
    assert (c1.training_runs, c1.promoted_runs, c1.rejected_runs) == (2, 1, 1)
    assert (c2.training_runs, c2.promoted_runs, c2.rejected_runs) == (1, 0, 1)
    assert (c1.training_cpu_s, c1.artifact_bytes, c2.training_cpu_s, c2.artifact_bytes) == (
        150,
        1000,
        30,
        500,
    )
    assert (c1.predictions, c1.labels, fraud.predictions, tiny.predictions, c2.predictions) == (8, 4, 6, 2, 2)
    assert (c1.served_requests, c1.serving_cpu_s, c2.served_requests, c2.serving_cpu_s) == (8, 2.0, 2, 0.25)
    # week 1: 60 CPU-s over 20 events: churn 12 (8 + 4 labels), fraud 6, tiny 2; week 2: 15 s, churn alone
    assert c1.monitor_cpu_s == pytest.approx(36)
    assert fraud.monitor_cpu_s == pytest.approx(18)
    assert tiny.monitor_cpu_s == pytest.approx(6)
    assert c2.monitor_cpu_s == pytest.approx(15)


def test_clickhouse_bytes_are_the_tables_bytes_shared_out_by_rows(seeded: Any) -> None:
    weeks = read_weeks(seeded, W1 - timedelta(days=7))
    parts = dict(
        seeded.query(
            "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase() "
            "GROUP BY table"
        ).result_rows
    )
    per_model_tables = {table for table, _ in sql.ROWS_OF_A_MODEL}
    assert sum(w.clickhouse_bytes for w in weeks) == pytest.approx(
        sum(v for t, v in parts.items() if t in per_model_tables)
    )
    # tiny has rows only in predictions: 2 of its 19 stored rows (17 events and a replayed one)
    [tiny] = [w for w in weeks if w.model_name == "tiny"]
    assert tiny.clickhouse_bytes == pytest.approx(parts["predictions"] * 2 / 19)


def test_retraining_payoff_on_the_real_engine(seeded: Any) -> None:
    report = cost_report(seeded, Prices(cpu_hour=3600, gb_month=1e9), W1)  # 1 per CPU-s, 1 per byte-month
    [payoff] = report.payoffs
    assert (payoff.model_name, payoff.version, payoff.runs) == ("churn", 2, 2)
    assert payoff.cost == pytest.approx(150 + 1000)
    assert payoff.accuracy_before == pytest.approx(0.65)  # (0.8 + 0.6 + 0.55) / 3
    assert payoff.accuracy_after == pytest.approx(0.85)  # (0.9 + 0.85 + 0.8) / 3
    churn = next(t for t in report.totals if t.usage.model_name == "churn")
    # CPU: training 180 + serving 2.25 + monitor 51; bytes: ClickHouse share + 1500 of artifacts
    assert churn.compute_cost == pytest.approx(180 + 2.25 + 51)
    assert churn.storage_cost_month == pytest.approx(churn.usage.clickhouse_bytes + 1500)


def test_the_command_prints_both_tables(
    clickhouse_server: ClickHouseServer, seeded: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLOOP_CLICKHOUSE_URL", clickhouse_server.url)
    monkeypatch.setenv("DRIFTLOOP_CLICKHOUSE_DATABASE", str(seeded.database))
    monkeypatch.setenv("DRIFTLOOP_COST_CPU_HOUR", "3600")
    runner = CliRunner()
    out = runner.invoke(app, ["cost", "--since", W1.isoformat()])
    assert out.exit_code == 0, out.output
    assert "Does retraining pay off?" in out.output
    rows = [line.split() for line in out.output.splitlines() if line.startswith(("churn", "fraud", "tiny"))]
    assert [r[:2] for r in rows[:3]] == [
        ["churn", W1.isoformat()],
        ["churn", W2.isoformat()],
        ["churn", "total"],
    ]
    assert rows[2][2:5] == ["3", "1", "2"]  # runs, promoted, rejected
    one = runner.invoke(app, ["cost", "--model", "fraud", "--format", "json", "--since", "4w"])
    assert one.exit_code == 0, one.output
    parsed = json.loads(one.output)
    assert [w["week"] for w in parsed["weeks"]] == [W1.isoformat(), "total"]
    assert parsed["weeks"][-1]["compute_cost"] == pytest.approx(18.0)  # its monitor share, 1 per CPU-s
    assert parsed["payoffs"] == []


def test_a_bad_since_is_refused_with_the_forms_it_takes() -> None:
    out = CliRunner().invoke(app, ["cost", "--since", "yesterday"])
    assert out.exit_code != 0
    assert "30d, 8w" in out.output


def test_a_model_server_built_by_bootstrap_records_its_usage(
    clickhouse_server: ClickHouseServer, clickhouse_client: Any, tmp_path: Path
) -> None:
    """The wiring of ``python -m services.serving``: bootstrap with ``record_usage`` writes ``serving_usage``."""
    database = str(clickhouse_client.database)
    settings = Settings(
        clickhouse_url=clickhouse_server.url, clickhouse_database=database, serving_usage_seconds=3600
    )
    registry = OneVersionRegistry()
    server = bootstrap(settings, model_name="churn", registry=registry, watch=False, record_usage=True)
    serve_churn(server, registry, tmp_path)
    server.start()
    for age in range(20, 25):
        server.predict({"age": age, "plan": "pro"})
    server.stop()  # the last interval is written on the way out
    server.close()
    [(requests, predictions, cpu_s)] = clickhouse_client.query(
        "SELECT requests, predictions, cpu_s FROM serving_usage WHERE model_name = 'churn'"
    ).result_rows
    assert (requests, predictions) == (5, 5)
    assert cpu_s > 0
    ensure_view(clickhouse_client, database)
    [week] = read_weeks(clickhouse_client, datetime.now(UTC).date() - timedelta(days=7))
    assert (week.model_name, week.served_requests, week.serving_cpu_s) == ("churn", 5, pytest.approx(cpu_s))
