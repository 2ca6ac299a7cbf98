"""Every query on docs/analytics.md (read from the page itself) and every Grafana panel, on the real engine.

The tables come from the monitor's and trainer's own DDL plus the analytics views; a small hand-made data
set (two models, three versions, a replayed batch in every table) gives answers that can be worked out on
paper, and each query must return exactly those.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftloop.cli.sql import parse_params
from driftloop.cost.report import ensure_view
from services.monitor.adapters.clickhouse import storage
from services.trainer.domain.run_table import RUN_COLUMNS, training_runs_ddl
from shared.events import DriftEvidence, RankedFeature
from tests.fixtures.clickhouse import random_database

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "analytics.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "driftloop.json"
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.DOTALL | re.MULTILINE)
NAME = re.compile(r"^-- name: (\w+)\n")

_TODAY = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)
T = _TODAY - timedelta(days=_TODAY.weekday() + 21)
"""10:00 on the Monday three weeks ago: recent enough that no table's TTL (30 days at least) has dropped the
rows yet, old enough that the fortnight the weekly queries look at is over."""
WEEK_1, WEEK_2 = T.date(), (T + timedelta(days=7)).date()
DAY = {"start": T - timedelta(hours=1), "end": T + timedelta(days=1)}


def page_queries() -> dict[str, str]:
    """The page's ```sql blocks by the name on their first line (every block must have one)."""
    queries: dict[str, str] = {}
    for block in SQL_BLOCK.findall(PAGE.read_text()):
        match = NAME.match(block)
        assert match, f"sql block without a '-- name: ...' first line:\n{block}"
        assert match.group(1) not in queries, f"two queries named {match.group(1)}"
        queries[match.group(1)] = block
    return queries


def documented_columns() -> dict[str, list[str]]:
    """The columns the prose before each query says it returns ("Returns `a`, `b`, ...")."""
    text, out, previous_end = PAGE.read_text(), {}, 0
    for match in SQL_BLOCK.finditer(text):
        prose = text[previous_end : match.start()]
        name = NAME.match(match.group(1))
        if name and "Returns" in prose:
            out[name.group(1)] = re.findall(r"`(\w+)`", prose[prose.rindex("Returns") :])
        previous_end = match.end()
    return out


QUERIES = page_queries()
COVERED: set[str] = set()


def covers(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Marks a test as the one for the page's query ``name``."""
    COVERED.add(name)
    return lambda test: test


def at(minutes: float, hours: float = 0, days: float = 0) -> datetime:
    return T + timedelta(minutes=minutes, hours=hours, days=days)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


# ------------------------------------------------------------------ data

Rows = list[list[Any]]
MINUTE = timedelta(minutes=1)


def _predictions() -> Rows:
    rows = [
        # model, version, prediction id, when, prediction, latency
        ("churn", "1", "p0", at(-120), "1", 1000.0),  # before the range queried
        ("churn", "1", "p1", at(10 / 60), "1", 10.0),
        ("churn", "1", "p2", at(20 / 60), "0", 20.0),
        ("churn", "1", "p3", at(30 / 60), "1", 30.0),
        ("churn", "1", "p4", at(40 / 60), "1", 40.0),
        ("churn", "2", "q1", at(5 / 60, hours=1), "1", 5.0),
        ("churn", "2", "q2", at(15 / 60, hours=1), "0", 15.0),
        ("churn", "2", "q3", at(30, hours=1), "1", 100.0),
        ("churn", "2", "q4", at(45, hours=1), "0", None),  # an app that does not time its calls
        ("fraud", "1", "f1", at(30), "0", 8.0),
        ("fraud", "1", "f2", at(10, hours=1), "1", None),
    ]
    return [[uuid.uuid4(), m, v, pid, t, pred, lat, t + MINUTE] for m, v, pid, t, pred, lat in rows]


def _labels() -> Rows:
    rows = [
        ("churn", "p0", "0", at(-120 + 10 / 60)),
        ("churn", "p1", "1", at(70 / 60)),  # 60 s after p1, right
        ("churn", "p2", "1", at(140 / 60)),  # 120 s after p2 ...
        ("churn", "p2", "0", at(620 / 60)),  # ... corrected later: right after all, still 120 s
        ("churn", "p3", "0", at(330 / 60)),  # 300 s, wrong
        ("churn", "q1", "1", at(35 / 60, hours=1)),  # 30 s, right
        ("churn", "q2", "1", at(105 / 60, hours=1)),  # 90 s, wrong
    ]
    return [[uuid.uuid4(), m, pid, label, t, t + MINUTE] for m, pid, label, t in rows]


def _metric(model: str, version: str, start: datetime, metric: str, value: float, late: int = 0) -> list[Any]:
    return [model, version, start, start + MINUTE, metric, "", value, start + (6 + late) * MINUTE]


def _window_metrics() -> Rows:
    return [
        _metric("churn", "1", at(0), "accuracy", 0.2),  # re-judged in seed(): 0.5 replaces it
        _metric("churn", "1", at(0), "labelled", 2),
        _metric("churn", "1", at(0), "count", 4),
        _metric("churn", "1", at(1), "accuracy", 1.0),
        _metric("churn", "1", at(1), "labelled", 2),
        _metric("churn", "1", at(59, hours=1), "accuracy", 0.8),
        _metric("churn", "1", at(59, hours=1), "labelled", 5),
        _metric("churn", "2", at(0, hours=1), "accuracy", 0.6),
        _metric("churn", "2", at(0, hours=1), "labelled", 10),
        _metric("churn", "2", at(1, hours=1), "accuracy", 0.9),
        _metric("churn", "2", at(1, hours=1), "labelled", 30),
        _metric("churn", "2", at(2, hours=1), "labelled", 0),  # no labels yet: no accuracy
        _metric("fraud", "1", at(0), "accuracy", 0.1),
        _metric("fraud", "1", at(0), "labelled", 100),
        _metric("churn", "1", at(0), "estimated_accuracy", 0.6),  # realized: the re-judged 0.5
        _metric("churn", "1", at(0), "estimated_accuracy_high", 0.9),  # a band's end: not an estimate
        _metric("churn", "1", at(1), "estimated_accuracy", 0.7),  # realized 1.0
        _metric("churn", "2", at(2, hours=1), "estimated_accuracy", 0.4),  # no labels yet: left out
    ]


def _drift_tests() -> Rows:
    rows = [
        # window, feature, test, statistic, p-value, threshold, reference size, current size, drifted
        (at(0), "age", "ks", 0.05, 0.4, None, 1000, 240, 0),
        (at(0), "age", "wasserstein_norm", 0.02, None, 0.1, 1000, 240, 0),
        (at(0), "age", "psi", 0.01, None, None, 1000, 240, 0),
        (at(1), "age", "ks", 0.3, 0.0001, None, 1000, 250, 1),
        (at(1), "age", "wasserstein_norm", 0.4, None, 0.1, 1000, 250, 1),
        (at(1), "age", "psi", 0.5, None, None, 1000, 250, 1),
        (at(1), "plan", "chi2", 40.0, 1e-6, None, 800, 250, 1),
        (at(1), "plan", "jensen_shannon", 0.2, None, 0.1, 800, 250, 1),
        (at(1), "plan", "psi", 0.3, None, None, 800, 250, 1),
        (at(1), "income", "ks", 0.02, 0.9, None, 1000, 250, 0),
        (at(1), "income", "wasserstein_norm", 0.01, None, 0.1, 1000, 250, 0),
        (at(1), "income", "psi", 0.001, None, None, 1000, 250, 0),
    ]
    return [["churn", "1", start, start + MINUTE, *rest, start + 2 * MINUTE] for start, *rest in rows]


def _evidence(
    feature: str, test: str, stat: float, p: float | None, thr: float, effect: float, ref: int
) -> DriftEvidence:
    return DriftEvidence(
        feature=feature, test=test, statistic=stat, p_value=p, threshold=thr, effect_size=effect,
        reference_size=ref, current_size=250 if ref else 300, drifted=True,
    )  # fmt: skip


AGE = _evidence("age", "ks+wasserstein_norm", 0.3, 0.0001, 0.1, 0.4, 1000)
PLAN = _evidence("plan", "chi2+jensen_shannon", 40.0, 1e-6, 0.1, 0.2, 800)
ACCURACY = _evidence("accuracy", "accuracy_drop", 0.7, None, 0.85, 0.15, 0)
FEATURE_DRIFT = uuid.UUID("00000000-0000-0000-0000-00000000d01f")


def _drift_events() -> Rows:
    rows = [
        # event id, type, model, version, window end, kinds, severity, evidence
        (FEATURE_DRIFT, "drift_detected", "churn", "1", at(2), ["feature"], 0.5, [AGE, PLAN]),
        (uuid.uuid4(), "drift_recovered", "churn", "1", at(10), [], 0.0, []),
        (uuid.uuid4(), "drift_detected", "churn", "2", at(5, hours=1), ["performance"], 0.15, [ACCURACY]),
        (uuid.uuid4(), "drift_detected", "fraud", "1", at(3), ["feature"], 1.0, [AGE]),
    ]
    ranked = {FEATURE_DRIFT: (RANKED, 0.7)}  # the others: a performance alert, a recovery, an older release's
    return [
        [event_id, kind, model, version, end, end - MINUTE, end, kinds, severity,
         [e.feature for e in evidence if e is not ACCURACY],
         json.dumps([e.model_dump(mode="json") for e in evidence]),
         json.dumps([f.model_dump(mode="json") for f in ranked.get(event_id, ([], None))[0]]),
         ranked.get(event_id, ([], None))[1], -0.07 if event_id == FEATURE_DRIFT else None]
        for event_id, kind, model, version, end, kinds, severity, evidence in rows
    ]  # fmt: skip


RANKED = [
    RankedFeature(feature="plan", importance=0.1, effect=2.0, score=0.2),
    RankedFeature(feature="age", importance=0.6, effect=3.0, score=1.8),
]


def _data_quality() -> Rows:
    e1, e2, e3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    return [
        [e1, "churn", "1", at(0), at(1), 100, "age", "missing", 5],
        [e1, "churn", "1", at(0), at(1), 100, "plan", "unseen_category", 2],
        [e1, "churn", "1", at(0), at(1), 100, "income", "out_of_range", 0],
        [e2, "churn", "1", at(1), at(2), 80, "age", "missing", 3],
        [e3, "fraud", "1", at(0), at(1), 50, "amount", "type_error", 7],
    ]


def _dead_letters() -> Rows:
    rows = [
        ("churn", "topic:predictions", "invalid_json", "bad 0", at(0, days=-1)),  # outside the range
        ("churn", "topic:predictions", "invalid_json", "bad 1", at(0)),
        ("churn", "topic:predictions", "invalid_json", "bad 2", at(5)),
        ("churn", "topic:predictions", "invalid_json", "bad 3", at(10)),
        ("unknown", "http:ingest", "unknown_model", "no such model", at(20)),
        ("fraud", "topic:labels", "schema_mismatch", "label missing 1", at(30)),
        ("fraud", "topic:labels", "schema_mismatch", "label missing 2", at(40)),
    ]
    return [
        [uuid.uuid4(), m, src, reason, detail, "{not json", 0, i, t, t + MINUTE]
        for i, (m, src, reason, detail, t) in enumerate(rows)
    ]


def _training_runs() -> Rows:
    runs = [
        # model, status, promoted, started, wall s, cpu s, peak MB, rows, bytes read
        ("churn", "finished", 0, at(0, days=-7), 3600, 3600, 900, 1, 1),  # the week before: outside
        ("churn", "finished", 1, at(0), 1800, 3600, 500, 1000, 10_000),
        ("churn", "rejected", 0, at(0, days=1), 900, 1800, 700, 2000, 20_000),
        ("churn", "failed", 0, at(0, days=8), 36, 18, 100, 0, 0),
        ("fraud", "finished", 0, at(0, days=2), 360, 720, 300, 500, 5000),
    ]
    keys = ["model_name", "status", "promoted", "started_at", "wall_s", "cpu_s", "peak_memory_mb", "rows"]
    out = []
    for *values, read in runs:
        run = dict(
            zip(keys, values, strict=True), bytes_read=read, run_id=uuid.uuid4(), reason="drift", detail=""
        )
        run |= {"metric": "accuracy", "finished_at": run["started_at"] + timedelta(seconds=run["wall_s"])}
        out.append([run.get(column, 0 if column == "artifact_bytes" else None) for column in RUN_COLUMNS])
    return out


HISTORY = [
    # event type, version, alias, action, previous version, actor, when
    ("model_version_registered", 1, "", "", None, "eve", at(0, days=-3)),  # a churn model since deleted
    ("model_deleted", None, "", "", None, "admin", at(0, days=-2)),
    ("model_version_registered", 1, "", "", None, "alice", at(-120, days=-1)),
    ("alias_changed", 1, "production", "set", None, "alice", at(-60, days=-1)),
    ("model_version_registered", 2, "", "", None, "trainer", at(30)),
    ("alias_changed", 2, "staging", "set", None, "trainer", at(45)),
    ("alias_changed", 2, "production", "moved", 1, "trainer", at(60)),
    ("alias_changed", 1, "production", "rolled_back", 2, "bob", at(120)),
    ("alias_changed", None, "production", "deleted", 1, "alice", at(-60, days=1)),
]


TRAINING_RUN = uuid.UUID("00000000-0000-0000-0000-0000000000a2")
LINEAGE_2 = {
    "dataset_uri": "s3://data/churn/2.parquet",
    "dataset_sha256": "d" * 64,
    "dataset_query": "SELECT * FROM labelled_predictions",
    "data_start": "2026-11-01T00:00:00Z",
    "data_end": "2026-11-08T00:00:00Z",
    "code_version": "abc123",
    "parent_version": 1,
    "drift_event_id": str(FEATURE_DRIFT),
    "training_run_id": str(TRAINING_RUN),
}
REGISTERED = {
    # (actor, version): artifact URI, sha256, size, metrics, lineage (JSON)
    ("eve", 1): ("s3://m/churn/old-1", "e" * 64, 10, {"accuracy": 0.5}, "{}"),
    ("alice", 1): ("s3://m/churn/1", "1" * 64, None, {}, ""),  # as a registry before lineage in events
    ("trainer", 2): ("s3://m/churn/2", "2" * 64, 2048, {"accuracy": 0.9, "f1": 0.85}, json.dumps(LINEAGE_2)),
}


def _model_events() -> Rows:
    other = ("fraud", "alias_changed", 7, "production", "set", None, "carol", at(0, days=-2))
    events = [("churn", *event) for event in HISTORY] + [other]
    return [
        [uuid.uuid4(), kind, model, *rest, rest[-1] + MINUTE,
         *REGISTERED.get((rest[-2], rest[0]), ("", "", None, {}, ""))]
        for model, kind, *rest in events
    ]  # fmt: skip


def _monitor_stats() -> Rows:
    return [
        [at(-60), "w1", "events_per_s", 1000.0],  # before the range
        [at(0), "w1", "events_per_s", 100.0],
        [at(0), "w1", "processing_delay_s", 0.5],
        [at(1), "w1", "events_per_s", 200.0],
        [at(1), "w1", "processing_delay_s", 1.5],
        [at(2), "w2", "events_per_s", 50.0],
        [at(2), "w2", "processing_delay_s", 3.0],
    ]


TABLES: list[tuple[str, str, Callable[[], Rows]]] = [
    ("predictions", "event_id model_name model_version prediction_id occurred_at prediction latency_ms "
     "ingested_at", _predictions),
    ("labels", "event_id model_name prediction_id label occurred_at ingested_at", _labels),
    ("window_metrics", "model_name model_version window_start window_end metric feature value computed_at",
     _window_metrics),
    ("drift_tests", "model_name model_version window_start window_end feature test statistic p_value "
     "threshold reference_size current_size drifted computed_at", _drift_tests),
    ("drift_events", "event_id event_type model_name model_version occurred_at window_start window_end kinds "
     "severity drifted_features evidence ranked_features importance_share_drifted estimated_accuracy_change",
     _drift_events),
    ("data_quality", "event_id model_name model_version interval_start interval_end events feature problem "
     "count", _data_quality),
    ("dead_letters", "event_id model_name source reason detail original source_partition source_offset "
     "occurred_at ingested_at", _dead_letters),
    ("training_runs", " ".join(RUN_COLUMNS), _training_runs),
    ("model_events", "event_id event_type model_name version alias action previous_version actor occurred_at "
     "ingested_at artifact_uri artifact_sha256 artifact_size metrics lineage", _model_events),
    ("monitor_stats", "at worker metric value", _monitor_stats),
]  # fmt: skip


def create_schema(client: Any) -> None:
    """The monitor's tables, the trainer's ``training_runs``, then the views (which need the tables)."""
    for ddl in [*storage.schema(), training_runs_ddl()]:  # the views come with the monitor's schema
        client.command(ddl)
    ensure_view(client, client.database)  # model_costs_weekly, as `driftloop cost` creates it


def seed(client: Any) -> None:
    """Inserts the data set, then replays one row of every table, as a writer that crashed would."""
    data = {table: (columns.split(), rows()) for table, columns, rows in TABLES}
    for table, (columns, rows) in data.items():
        client.insert(table, rows, column_names=columns)
    for table, (columns, rows) in data.items():
        if table != "monitor_stats":  # plain MergeTree: the monitor writes each sample once
            client.insert(table, rows[1:2], column_names=columns)
    # the monitor re-judged churn v1's first window: its accuracy is 0.5, not 0.2
    client.insert(
        "window_metrics",
        [_metric("churn", "1", at(0), "accuracy", 0.5, late=5)],
        column_names=data["window_metrics"][0],
    )


@pytest.fixture(scope="module")
def client(clickhouse_server: Any) -> Iterator[Any]:
    """One database with the data set for the whole module (the queries only read)."""
    import clickhouse_connect

    database = random_database()
    admin = clickhouse_connect.get_client(host=clickhouse_server.host, port=clickhouse_server.port)
    admin.command(f"CREATE DATABASE {database}")
    ch = clickhouse_connect.get_client(
        host=clickhouse_server.host, port=clickhouse_server.port, database=database
    )
    try:
        create_schema(ch)
        seed(ch)
        yield ch
    finally:
        ch.close()
        admin.command(f"DROP DATABASE IF EXISTS {database}")
        admin.close()


def run(client: Any, name: str, **params: Any) -> list[list[Any]]:
    result = client.query(QUERIES[name], parameters=params)
    return [_plain(list(row)) for row in result.result_rows]


def columns(client: Any, name: str, **params: Any) -> list[str]:
    return list(client.query(QUERIES[name], parameters=params).column_names)


H10, H11 = utc(at(0)), utc(at(0, hours=1))


# ------------------------------------------------------------------ the page


def test_every_query_on_the_page_has_a_test() -> None:
    assert set(QUERIES) == COVERED, f"untested: {set(QUERIES) - COVERED}; gone: {COVERED - set(QUERIES)}"


def test_page_has_no_sql_outside_named_blocks() -> None:
    fences = re.findall(r"^```(\w*)", PAGE.read_text(), re.MULTILINE)
    opened = fences[0::2]
    assert opened.count("sql") == len(QUERIES)
    assert set(opened) <= {"sql", "bash"}


SAMPLE_PARAMS = {
    "model": "churn", "feature": "age", "alias": "production", "at": at(0),
    "event_id": str(FEATURE_DRIFT), "cpu_hour": 1.0, "gb_month": 1.0, "version": "1", "edges": [10.0, 20.0],
    **DAY,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_returns_the_columns_the_page_names(client: Any, window_client: Any, name: str) -> None:
    wanted = set(re.findall(r"\{(\w+):", QUERIES[name]))
    params = {k: v for k, v in SAMPLE_PARAMS.items() if k in wanted}
    if name.startswith("window_") and "feature" in wanted:  # an empty GROUP BY answer has no columns
        client, params = (
            window_client,
            {**params, **WINDOW, "feature": "tenure" if "edges" in wanted else "plan"},
        )
    assert columns(client, name, **params) == documented_columns().get(name)


@covers("prediction_volume")
def test_prediction_volume_counts_each_event_once_per_hour(client: Any) -> None:
    rows = run(client, "prediction_volume", **DAY)
    assert [r[:4] for r in rows] == [
        ["churn", "1", H10, 4],  # p1 replayed: still 4; p0 is before the range
        ["fraud", "1", H10, 1],
        ["churn", "2", H11, 4],
        ["fraud", "1", H11, 1],
    ]
    assert rows[0][4] == pytest.approx(4 / 3600)


def test_queries_take_parameters_as_text_as_the_cli_passes_them(client: Any) -> None:
    start, end = (f"{t:%Y-%m-%d %H:%M:%S}" for t in (DAY["start"], DAY["end"]))
    params = parse_params(["model=churn", f"start={start}", f"end={end}"])
    assert run(client, "latency_by_version", **params) == run(
        client, "latency_by_version", model="churn", **DAY
    )
    assert len(run(client, "latency_by_version", **params)) == 2


@covers("latency_by_version")
def test_latency_percentiles_by_version_ignore_untimed_calls(client: Any) -> None:
    rows = run(client, "latency_by_version", model="churn", **DAY)
    assert rows == [
        ["1", H10, 4, 25.0, 38.5, 39.7, 40.0],  # 10, 20, 30, 40 ms (linear interpolation)
        ["2", H11, 4, 15.0, 91.5, 98.3, 100.0],  # 5, 15, 100 ms and one call without latency
    ]


@covers("accuracy_by_version")
def test_accuracy_by_version_is_weighted_by_labelled_predictions(client: Any) -> None:
    rows = run(client, "accuracy_by_version", model="churn")
    assert rows == [
        ["1", H10, 0.75, 4],  # (0.5 * 2 + 1.0 * 2) / 4: the re-judged 0.5 replaced 0.2
        ["1", H11, 0.8, 5],
        ["2", H11, 0.825, 40],  # (0.6 * 10 + 0.9 * 30) / 40; the unlabelled window is left out
    ]


@covers("estimation_error")
def test_estimation_error_compares_estimates_with_realized_windows_only(client: Any) -> None:
    rows = run(client, "estimation_error", model="churn")
    assert [r[:3] for r in rows] == [["1", "accuracy", 2]]
    assert rows[0][3:] == [pytest.approx(0.2), pytest.approx(0.3)]  # |0.6 - 0.5| and |0.7 - 1.0|


@covers("accuracy_from_labels")
def test_accuracy_from_labels_counts_corrections(client: Any) -> None:
    rows = run(client, "accuracy_from_labels", model="churn", **DAY)
    assert rows == [
        ["1", WEEK_1, 3, round(2 / 3, 9)],  # p1 right, p2 right once corrected, p3 wrong
        ["2", WEEK_1, 2, 0.5],
    ]


@covers("label_delay")
def test_label_delay_runs_from_prediction_to_first_label(client: Any) -> None:
    rows = run(client, "label_delay", model="churn", **DAY)
    assert rows == [
        ["1", WEEK_1, 3, 120.0, 282.0, 300.0],  # 60, 120 (not the correction's 600), 300 s
        ["2", WEEK_1, 2, 60.0, 87.0, 90.0],  # 30, 90 s
    ]


@covers("data_quality_problems")
def test_data_quality_problems_sum_counts_over_intervals(client: Any) -> None:
    rows = run(client, "data_quality_problems", **DAY)
    assert rows == [
        ["churn", "age", "missing", 8],  # 5 + 3
        ["fraud", "amount", "type_error", 7],
        ["churn", "plan", "unseen_category", 2],  # replayed, counted once
    ]


@covers("drift_timeline")
def test_drift_timeline_unpacks_the_evidence_of_each_event(client: Any) -> None:
    rows = run(client, "drift_timeline", model="churn", **DAY)
    detected, recovered = (
        [utc(at(2)), "drift_detected", "1", ["feature"], 0.5],
        [utc(at(10)), "drift_recovered"],
    )
    assert [r[:5] for r in rows] == [
        detected,
        detected,
        [*recovered, "1", [], 0.0],
        [utc(at(5, hours=1)), "drift_detected", "2", ["performance"], 0.15],
    ]
    assert [r[5:] for r in rows] == [
        ["age", "ks+wasserstein_norm", 0.3, 0.0001, 0.4, 0.1, 1000, 250],
        ["plan", "chi2+jensen_shannon", 40.0, 1e-6, 0.2, 0.1, 800, 250],
        [None] * 8,
        ["accuracy", "accuracy_drop", 0.7, None, 0.15, 0.85, 0, 300],
    ]


@covers("drift_ranked_features")
def test_drift_ranked_features_lists_each_alerts_features_highest_score_first(client: Any) -> None:
    rows = run(client, "drift_ranked_features", model="churn", **DAY)
    assert rows == [
        [utc(at(2)), "1", 0.7, -0.07, "age", 0.6, 3.0, 1.8, False],
        [utc(at(2)), "1", 0.7, -0.07, "plan", 0.1, 2.0, 0.2, False],
    ]


@covers("drift_alert_tests")
def test_drift_alert_tests_lists_every_test_of_the_alert_window(client: Any) -> None:
    rows = run(client, "drift_alert_tests", event_id=str(FEATURE_DRIFT))
    assert [[*r[:2], r[-1]] for r in rows] == [
        ["age", "ks", 1],
        ["age", "psi", 1],
        ["age", "wasserstein_norm", 1],
        ["plan", "chi2", 1],
        ["plan", "jensen_shannon", 1],
        ["plan", "psi", 1],
        ["income", "ks", 0],
        ["income", "psi", 0],
        ["income", "wasserstein_norm", 0],
    ]
    assert rows[0] == ["age", "ks", 0.3, 0.0001, None, 1000, 250, 1]
    assert rows[2] == ["age", "wasserstein_norm", 0.4, None, 0.1, 1000, 250, 1]


@covers("feature_drift_history")
def test_feature_drift_history_pivots_the_tests_of_each_window(client: Any) -> None:
    rows = run(client, "feature_drift_history", model="churn", feature="age")
    assert rows == [
        [utc(at(0)), "1", "ks", 0.05, 0.4, 0.02, 0.1, 0.01, 240, 0],
        [utc(at(1)), "1", "ks", 0.3, 0.0001, 0.4, 0.1, 0.5, 250, 1],
    ]
    plan = run(client, "feature_drift_history", model="churn", feature="plan")
    assert plan == [[utc(at(1)), "1", "chi2", 40.0, 1e-6, 0.2, 0.1, 0.3, 250, 1]]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at(-90, days=-1), []),  # before the alias existed
        (at(-60, days=-1), [[1, "set", "alice", utc(at(-60, days=-1)), utc(at(60))]]),
        (at(50), [[1, "set", "alice", utc(at(-60, days=-1)), utc(at(60))]]),  # staging moved; not production
        (at(90), [[2, "moved", "trainer", utc(at(60)), utc(at(120))]]),
        (at(120), [[1, "rolled_back", "bob", utc(at(120)), utc(at(-60, days=1))]]),
        (at(0, days=3), [[None, "deleted", "alice", utc(at(-60, days=1)), None]]),
    ],
)
@covers("alias_version_at")
def test_alias_version_at_a_given_time(client: Any, when: datetime, expected: list[Any]) -> None:
    assert run(client, "alias_version_at", model="churn", alias="production", at=when) == expected


@covers("model_history")
def test_model_history_lists_registrations_and_alias_moves_once(client: Any) -> None:
    rows = run(client, "model_history", model="churn")
    assert rows == [
        [utc(t), kind, v, alias, action, prev, actor] for kind, v, alias, action, prev, actor, t in HISTORY
    ]


@covers("model_versions")
def test_model_versions_show_metrics_artifact_and_lineage_of_the_current_model_only(client: Any) -> None:
    rows = run(client, "model_versions", model="churn")
    assert rows == [
        [2, utc(at(30)), "trainer", {"accuracy": 0.9, "f1": 0.85}, "s3://m/churn/2", 2048, "2" * 64,
         "s3://data/churn/2.parquet", "d" * 64, "SELECT * FROM labelled_predictions",
         datetime(2026, 11, 1), datetime(2026, 11, 8), "abc123", 1, FEATURE_DRIFT, TRAINING_RUN],
        # registered before events carried lineage: nothing made up; eve's version 1 was deleted with the model
        [1, utc(at(-120, days=-1)), "alice", {}, "s3://m/churn/1", None, "1" * 64,
         "", "", "", None, None, "", None, None, None],
    ]  # fmt: skip
    assert run(client, "model_versions", model="nobody") == []


@covers("training_cost_weekly")
def test_training_cost_per_model_and_week(client: Any) -> None:
    rows = run(client, "training_cost_weekly", start=at(0), end=at(0, days=14))
    assert rows == [
        ["churn", WEEK_1, 2, 1, 1, 1, 0, 0.75, 1.5, 700.0, 3000, 30_000],  # first run replayed
        ["fraud", WEEK_1, 1, 1, 0, 0, 0, 0.1, 0.2, 300.0, 500, 5000],
        ["churn", WEEK_2, 1, 0, 0, 0, 1, 0.01, 0.005, 100.0, 0, 0],
    ]


@covers("model_cost_weekly")
def test_model_cost_per_week_prices_the_cpu_of_each_model(client: Any) -> None:
    rows = run(client, "model_cost_weekly", start=at(0), end=at(0, days=14), cpu_hour=2.0, gb_month=1.0)
    assert [r[:7] for r in rows] == [
        # runs, promoted, rejected; CPU: the runs' (no monitor or serving samples in this data set), x 2
        ["churn", WEEK_1, 2, 1, 1, 1.5, 3.0],  # 3600 + 1800 s; the replayed run counted once
        ["fraud", WEEK_1, 1, 0, 1, 0.2, 0.4],  # finished but not promoted: rejected
        ["unknown", WEEK_1, 0, 0, 0, 0.0, 0.0],  # only a dead letter: some bytes, no CPU
        ["churn", WEEK_2, 1, 0, 1, 0.005, 0.01],
    ]
    assert all(r[7] > 0 for r in rows)  # every model keeps some bytes (MB)
    assert [r[8] for r in rows] == pytest.approx([r[7] / 1000 for r in rows], rel=1e-3)  # 1 per GB-month


@covers("dead_letter_reasons")
def test_dead_letter_reasons_with_latest_detail(client: Any) -> None:
    rows = run(client, "dead_letter_reasons", **DAY)
    assert rows == [
        ["churn", "topic:predictions", "invalid_json", 3, utc(at(0)), utc(at(10)), "bad 3"],
        ["fraud", "topic:labels", "schema_mismatch", 2, utc(at(30)), utc(at(40)), "label missing 2"],
        ["unknown", "http:ingest", "unknown_model", 1, utc(at(20)), utc(at(20)), "no such model"],
    ]


@covers("monitor_health")
def test_monitor_health_per_worker(client: Any) -> None:
    rows = run(client, "monitor_health", start=at(0), end=at(60))
    assert rows == [["w1", 150.0, 1.5, utc(at(1))], ["w2", 50.0, 3.0, utc(at(2))]]


# ------------------------------------------------------------------ the Grafana dashboard


def grafana_sql(sql: str, start: datetime, end: datetime, interval_s: int, model: str) -> str:
    """The SQL the ClickHouse plugin sends for a panel: its macros and the ``model`` variable expanded."""

    def stamp(t: datetime) -> str:
        return f"toDateTime64('{utc(t):%Y-%m-%d %H:%M:%S}', 3, 'UTC')"

    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= {stamp(start)} AND \1 <= {stamp(end)}", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(\1, INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__interval_s", str(interval_s)).replace("${model}", model)
    assert "$" not in sql, f"unexpanded macro in {sql}"
    return sql


def panels() -> dict[str, str]:
    board = json.loads(DASHBOARD.read_text())
    return {p["title"]: p["targets"][0]["rawSql"] for p in board["panels"]}


def panel_rows(client: Any, title: str) -> list[list[Any]]:
    sql = grafana_sql(panels()[title], at(0), at(0, days=1), 3600, "churn")
    return [_plain(list(r)) for r in client.query(sql).result_rows]


def test_dashboard_panels_answer_like_the_page(client: Any) -> None:
    assert panel_rows(client, "Events/s per model") == _plain(
        [
            [H10, "churn", 4 / 3600],
            [H10, "fraud", 1 / 3600],
            [H11, "churn", 4 / 3600],
            [H11, "fraud", 1 / 3600],
        ]
    )
    assert panel_rows(client, "Accuracy by version (${model})") == [
        [H10, "1", 0.75],
        [H11, "1", 0.8],
        [H11, "2", 0.825],
    ]
    assert panel_rows(client, "Latency p99 by version (${model})") == [[H10, "1", 39.7], [H11, "2", 98.3]]
    assert panel_rows(client, "Dead letters by reason") == [
        [H10, "invalid_json", 3],
        [H10, "schema_mismatch", 2],
        [H10, "unknown_model", 1],
    ]
    drift = panel_rows(client, "Drift events (${model})")
    assert [(r[1], r[5]) for r in drift] == [
        ("drift_detected", "accuracy"),
        ("drift_recovered", None),
        ("drift_detected", "age"),
        ("drift_detected", "plan"),
    ]


def test_dashboard_drift_annotations_run(client: Any) -> None:
    board = json.loads(DASHBOARD.read_text())
    (annotation,) = board["annotations"]["list"]
    sql = grafana_sql(annotation["target"]["rawSql"], at(0), at(0, days=1), 3600, "churn")
    rows = sorted(_plain(list(r)) for r in client.query(sql).result_rows)
    assert rows == [
        [utc(at(2)), "drift_detected v1: age, plan"],
        [utc(at(10)), "drift_recovered v1: "],
        [utc(at(5, hours=1)), "drift_detected v2: "],
    ]


# ------------------------------------------------------------------ the web console's queries


@covers("window_summary")
def test_window_summary_has_one_row_per_window_and_version(client: Any) -> None:
    rows = [[r[1], r[2], *r[4:]] for r in run(client, "window_summary", model="churn", **DAY)]
    assert rows == [
        ["1", utc(at(0)), 4.0, 0.5, 0.6, 2.0],  # the re-judged accuracy, beside the estimate
        ["1", utc(at(1)), 0.0, 1.0, 0.7, 2.0],
        ["2", utc(at(0, hours=1)), 0.0, 0.6, None, 10.0],
        ["2", utc(at(1, hours=1)), 0.0, 0.9, None, 30.0],
        ["2", utc(at(2, hours=1)), 0.0, None, 0.4, 0.0],  # no labels yet: no accuracy, only the estimate
        ["1", utc(at(59, hours=1)), 0.0, 0.8, None, 5.0],
    ]
    assert {r[0] for r in run(client, "window_summary", model="", **DAY)} == {"churn", "fraud"}


@covers("last_drift_announcement")
def test_last_drift_announcement_of_each_model(client: Any) -> None:
    assert run(client, "last_drift_announcement") == [
        ["churn", "drift_detected", "2", ["performance"], utc(at(5, hours=1))],
        ["fraud", "drift_detected", "1", ["feature"], utc(at(3))],
    ]


@covers("drift_events_of_model")
def test_drift_events_of_a_model_newest_first(client: Any) -> None:
    rows = run(client, "drift_events_of_model", model="churn", **DAY)
    assert [r[1] for r in rows] == ["drift_detected", "drift_recovered", "drift_detected"]
    assert rows[-1][0] == FEATURE_DRIFT and rows[-1][-1] == ["age", "plan"]


@covers("drift_event_evidence")
def test_drift_event_evidence_per_feature(client: Any) -> None:
    rows = run(client, "drift_event_evidence", model="churn", event_id=str(FEATURE_DRIFT))
    assert [r[4:] for r in rows] == [
        ["age", "ks+wasserstein_norm", 0.3, 0.0001, 0.4, 0.1, 1000, 250, True],
        ["plan", "chi2+jensen_shannon", 40.0, 1e-6, 0.2, 0.1, 800, 250, True],
    ]


@pytest.fixture(scope="module")
def window_client(clickhouse_server: Any) -> Iterator[Any]:
    """A database of its own with one window of predictions carrying features (1..10; b, a, a, a, b)."""
    import clickhouse_connect

    database = random_database()
    admin = clickhouse_connect.get_client(host=clickhouse_server.host, port=clickhouse_server.port)
    admin.command(f"CREATE DATABASE {database}")
    ch = clickhouse_connect.get_client(
        host=clickhouse_server.host, port=clickhouse_server.port, database=database
    )
    try:
        create_schema(ch)
        rows = [
            [uuid.uuid4(), "m", "1", f"p{i}", at(i / 20), {"tenure": float(i)} if i else {},
             {"plan": "a" if i % 4 else "b"} if i <= 4 else {}, "1", at(1)]
            for i in range(11)
        ]  # fmt: skip
        columns = (
            "event_id model_name model_version prediction_id occurred_at num_features cat_features prediction"
        )
        ch.insert("predictions", rows, column_names=[*columns.split(), "ingested_at"])
        yield ch
    finally:
        ch.close()
        admin.command(f"DROP DATABASE IF EXISTS {database}")
        admin.close()


WINDOW = {"model": "m", "version": "1", "start": at(0), "end": at(1)}


@covers("window_feature_bins")
def test_window_feature_bins_count_values_between_the_edges(window_client: Any) -> None:
    rows = run(window_client, "window_feature_bins", feature="tenure", edges=[3.0, 7.0], **WINDOW)
    assert rows == [[0, 2], [1, 4], [2, 4]]  # 1, 2 | 3 to 6 | 7 to 10; the row without tenure is left out


@covers("window_feature_quantiles")
def test_window_feature_quantiles_span_the_window(window_client: Any) -> None:
    [[quantiles, values]] = run(window_client, "window_feature_quantiles", feature="tenure", **WINDOW)
    assert values == 10 and len(quantiles) == 21 and quantiles[0] == 1.0 and quantiles[-1] == 10.0


@covers("window_category_counts")
def test_window_category_counts(window_client: Any) -> None:
    assert run(window_client, "window_category_counts", feature="plan", **WINDOW) == [["a", 3], ["b", 2]]


@covers("training_runs_of_model")
def test_training_runs_of_a_model_newest_first(client: Any) -> None:
    rows = run(client, "training_runs_of_model", model="churn")
    assert [(r[1], r[5]) for r in rows] == [("failed", 0), ("rejected", 0), ("finished", 1), ("finished", 0)]


@covers("dead_letters_by_period")
def test_dead_letters_by_five_minutes_and_reason(client: Any) -> None:
    assert run(client, "dead_letters_by_period", **DAY) == [
        [utc(at(0)), "invalid_json", 1],  # "bad 1" was replayed: counted once
        [utc(at(5)), "invalid_json", 1],
        [utc(at(10)), "invalid_json", 1],
        [utc(at(20)), "unknown_model", 1],
        [utc(at(30)), "schema_mismatch", 1],
        [utc(at(40)), "schema_mismatch", 1],
    ]


@covers("dead_letter_samples")
def test_dead_letter_samples_newest_first_with_original(client: Any) -> None:
    rows = run(client, "dead_letter_samples", **DAY)
    assert [r[4] for r in rows] == [
        "label missing 2",
        "label missing 1",
        "no such model",
        "bad 3",
        "bad 2",
        "bad 1",
    ]
    assert rows[0][5] in ("{not json", b"{not json")
