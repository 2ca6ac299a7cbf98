"""``driftloop cost``'s arithmetic on a seeded data set whose every sum is worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from driftloop.cli.cost import render
from driftloop.cli.sql import OutputFormat
from driftloop.cost.ledger import (
    AccuracyWindow,
    Prices,
    Run,
    WeekUsage,
    model_totals,
    payoffs,
    since_date,
    weekly_costs,
)
from driftloop.cost.report import CostReport

W1, W2 = date(2026, 1, 5), date(2026, 1, 12)
PRICES = Prices(cpu_hour=0.5, gb_month=0.1)

WEEKS = [
    WeekUsage("churn", W1, training_runs=2, promoted_runs=1, rejected_runs=1, training_cpu_s=3600,
              predictions=1000, labels=800, served_requests=1000, serving_cpu_s=1800, monitor_cpu_s=900,
              clickhouse_bytes=1.5e9, artifact_bytes=0.5e9),
    WeekUsage("churn", W2, training_runs=1, rejected_runs=1, training_cpu_s=1800, predictions=500,
              served_requests=500, serving_cpu_s=900, monitor_cpu_s=450, clickhouse_bytes=0.5e9),
    WeekUsage("fraud", W1, predictions=200, served_requests=200, serving_cpu_s=360, monitor_cpu_s=180,
              clickhouse_bytes=0.2e9),
]  # fmt: skip


def test_a_week_costs_its_cpu_hours_and_a_month_of_its_bytes() -> None:
    lines = weekly_costs(WEEKS, PRICES)
    # churn W1: 3600 + 1800 + 900 = 6300 CPU-s = 1.75 h x 0.5 = 0.875; 1.5 + 0.5 GB x 0.1 = 0.2 a month
    assert lines[0].usage.cpu_s == 6300
    assert lines[0].compute_cost == pytest.approx(0.875)
    assert lines[0].storage_cost_month == pytest.approx(0.2)
    # churn W2: 1800 + 900 + 450 = 3150 s = 0.875 h -> 0.4375; 0.5 GB -> 0.05
    assert lines[1].compute_cost == pytest.approx(0.4375)
    assert lines[1].storage_cost_month == pytest.approx(0.05)
    # fraud W1: 360 + 180 = 540 s = 0.15 h -> 0.075; 0.2 GB -> 0.02
    assert lines[2].compute_cost == pytest.approx(0.075)
    assert lines[2].storage_cost_month == pytest.approx(0.02)


def test_totals_sum_every_week_of_a_model() -> None:
    churn, fraud = model_totals(WEEKS, PRICES)
    assert churn.usage.model_name == "churn" and churn.usage.week == W1
    assert (churn.usage.training_runs, churn.usage.promoted_runs, churn.usage.rejected_runs) == (3, 1, 2)
    assert churn.usage.predictions == 1500 and churn.usage.served_requests == 1500
    assert churn.usage.cpu_s == 9450  # 6300 + 3150
    assert churn.compute_cost == pytest.approx(1.3125)  # 0.875 + 0.4375
    assert churn.storage_cost_month == pytest.approx(0.25)  # 2.5 GB
    assert fraud.compute_cost == pytest.approx(0.075)
    assert fraud.usage.training_runs == 0


T = datetime(2026, 1, 6, 10, tzinfo=UTC)  # Tuesday of W1, 10:00


def hours(h: float) -> datetime:
    return T + timedelta(hours=h)


RUNS = [
    Run("churn", hours(-24), hours(-23.5), False, None, 1800, 0),  # rejected: part of v2's price
    Run("churn", hours(0), hours(0.5), True, 2, 1800, 0.5e9),  # promoted at 10:30
    Run("churn", hours(168), hours(168.5), False, 3, 1800, 0.2e9),  # after: no promotion yet
    Run("fraud", hours(1), hours(1.25), True, 7, 360, 0),  # promoted, no windows judged
]
WINDOWS = [
    AccuracyWindow("churn", "1", hours(-3), 0.9),  # older than the last three before: left out
    AccuracyWindow("churn", "1", hours(-2), 0.7),
    AccuracyWindow("churn", "1", hours(-1), 0.6),
    AccuracyWindow("churn", "1", hours(0), 0.5),  # starts before 10:30: "before"
    AccuracyWindow("churn", "1", hours(1.5), 0.4),  # the old version after the promotion: neither
    AccuracyWindow("churn", "2", hours(1), 0.8),
    AccuracyWindow("churn", "2", hours(2), 0.9),
    AccuracyWindow("churn", "2", hours(3), 0.85),
    AccuracyWindow("churn", "2", hours(4), 0.1),  # past the first three after: left out
]


def test_a_promoted_version_costs_its_run_and_the_rejected_ones_before_it() -> None:
    churn, fraud = payoffs(RUNS, WINDOWS, PRICES, n_windows=3)
    assert (churn.version, churn.runs, churn.promoted_at) == (2, 2, hours(0.5))
    assert churn.training_cpu_s == 3600
    assert churn.cost == pytest.approx(0.5 + 0.05)  # 1 CPU-hour x 0.5 + 0.5 GB x 0.1 a month
    assert churn.accuracy_before == pytest.approx(0.6)  # (0.7 + 0.6 + 0.5) / 3
    assert churn.accuracy_after == pytest.approx(0.85)  # (0.8 + 0.9 + 0.85) / 3
    assert churn.recovered == pytest.approx(0.25)
    assert churn.cost_per_point == pytest.approx(0.55 / 25)
    assert (fraud.runs, fraud.accuracy_before, fraud.recovered, fraud.cost_per_point) == (1, None, None, None)
    assert fraud.cost == pytest.approx(0.05)  # 360 s = 0.1 h x 0.5


def test_a_version_that_lost_accuracy_has_no_cost_per_point() -> None:
    worse = [*WINDOWS[:4], AccuracyWindow("churn", "2", hours(1), 0.3)]
    [churn] = payoffs(RUNS[:2], worse, PRICES)
    assert churn.recovered == pytest.approx(0.3 - 0.6)
    assert churn.cost_per_point is None


def test_since_takes_a_date_or_a_span_back() -> None:
    assert since_date("30d", date(2026, 2, 4)) == date(2026, 1, 5)
    assert since_date(" 2w ", date(2026, 1, 19)) == W1
    with pytest.raises(ValueError, match="30d, 8w"):
        since_date("last tuesday", W1)


def test_the_table_shows_weeks_a_total_per_model_and_the_payoffs() -> None:
    report = CostReport(
        weekly_costs(WEEKS, PRICES), model_totals(WEEKS, PRICES), payoffs(RUNS, WINDOWS, PRICES)
    )
    text = render(report, OutputFormat.TABLE)
    lines = text.splitlines()
    assert lines[1].split()[:3] == ["model", "week", "runs"]
    rows = [line.split() for line in lines if line.startswith(("churn", "fraud"))]
    assert [r[1] for r in rows[:5]] == ["2026-01-05", "2026-01-12", "total", "2026-01-05", "total"]
    assert rows[2][-2:] == ["1.3125", "0.25"]
    assert "Does retraining pay off?" in text
    assert rows[5][:2] == ["churn", "2"] and rows[5][-2:] == ["0.25", "0.022"]
    as_json = render(report, OutputFormat.JSON)
    assert '"cost_per_point": 0.022' in as_json and '"week": "total"' in as_json
