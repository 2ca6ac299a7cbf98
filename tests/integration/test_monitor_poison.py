"""No record on the internal topics can stop the monitor or cost its neighbours (the issue's symptoms, fixed).

Each poison record is dead-lettered with its reason and original bytes; the valid events around it are
stored; the model's windows keep being judged.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.monitor.adapters.clickhouse.sink import ClickHouseSink
from services.monitor.adapters.clickhouse.storage import predictions_ddl, predictions_intake_ddl
from shared import wire
from shared.clickhouse import clickhouse_client
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from shared.validation import record_id
from tests.integration.monitor_worker import monitor_settings, produce_raw, start_monitor, wait_for

pytestmark = pytest.mark.integration

MODEL = "poisoned"


def _event(i: int, at: datetime, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_type": "prediction_logged",
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "model_name": MODEL,
        "model_version": "1",
        "prediction_id": f"p-{i}",
        "features": {"age": 30 + i % 7, "plan": "pro"},
        "prediction": i % 2,
    }
    event.update(overrides)
    return event


def _poison(at: datetime) -> dict[str, bytes]:
    """One record per way a producer that is not Driftloop's validator can go wrong, by expected reason."""
    label = {"event_type": "label_logged", "model_name": MODEL, "prediction_id": "p-1", "label": 1}
    return {
        "too_far_in_future": json.dumps(_event(-1, at, occurred_at="2400-01-01T00:00:00Z")).encode(),
        "too_old": json.dumps(_event(-2, at, occurred_at="1970-01-01T00:00:00Z")).encode(),
        "schema_error": json.dumps(_event(-3, at, features={"age": [1, 2], "plan": "pro"})).encode(),
        "non_finite_number": json.dumps(_event(-4, at, features={"age": 12345}))
        .replace("12345", "1e999")
        .encode(),
        "invalid_json": b"\x00\x01\xff binary, not JSON",
        "event_too_large": json.dumps(_event(-5, at, features={"blob": "x" * 900_000})).encode(),
        "empty_message": b"",
    } | {"schema_error ": json.dumps(label).encode()}  # a label on the predictions topic


def test_poison_records_are_dead_lettered_and_their_batch_mates_stored_and_judged(
    kafka: Any, clickhouse_server: Any, tmp_path: Path
) -> None:
    settings = monitor_settings(
        kafka,
        clickhouse_server,
        tmp_path,
        monitor_window_seconds=10,
        monitor_allowed_lateness_seconds=0,
        monitor_label_wait_seconds=0,
    )
    topics = topic_names(settings.topic_prefix)
    create_topics(settings.kafka_bootstrap, topics.all(), 2, 1)
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    before = [_event(i, start + timedelta(seconds=i * 0.1)) for i in range(300)]
    after = [_event(i, start + timedelta(seconds=i * 0.1)) for i in range(300, 600)]
    # a minimal event from another producer: no event_id, no occurred_at (the record's timestamp stands in)
    minimal = {
        k: v for k, v in _event(999, start).items() if k not in ("event_id", "occurred_at", "event_type")
    }
    poison = _poison(start)
    key = MODEL.encode()
    produce_raw(settings, topics.predictions, [(key, json.dumps(e).encode()) for e in before])
    produce_raw(settings, topics.predictions, [(key, v or None) for v in poison.values()])  # type: ignore[misc]
    produce_raw(settings, topics.predictions, [(key, json.dumps(e).encode()) for e in after])
    produce_raw(settings, topics.predictions, [(key, json.dumps(minimal).encode())])

    worker = start_monitor(settings, tmp_path / "monitor.log")
    client = clickhouse_client(settings)

    def count(sql: str) -> int:
        try:
            return int(client.command(sql))
        except Exception:  # tables not created yet
            return -1

    try:
        wait_for(
            lambda: count("SELECT count() FROM predictions FINAL") == 601, 90, "601 stored", worker.log_path
        )
        wait_for(
            lambda: count("SELECT count() FROM dead_letters FINAL") == len(poison),
            60,
            lambda: f"{len(poison)} dead letters, got {count('SELECT count() FROM dead_letters FINAL')}",
            worker.log_path,
        )
        wait_for(
            lambda: count("SELECT count() FROM window_metrics FINAL WHERE metric = 'count'") >= 5,
            60,
            "the windows after the poison judged",
            worker.log_path,
        )
        letters = client.query("SELECT reason, hex(original) FROM dead_letters FINAL").result_rows
        expected = sorted((reason.strip(), original) for reason, original in poison.items())
        found = sorted((reason, bytes.fromhex(original)) for reason, original in letters)
        big = [original for reason, original in found if reason == "event_too_large"]
        assert len(big) == 1 and poison["event_too_large"].startswith(big[0])  # cut to fit one message
        assert [f for f in found if f[0] != "event_too_large"] == [
            e for e in expected if e[0] != "event_too_large"
        ]
        # the minimal event is stored with an id that a replay of its record reproduces
        [(event_id, occurred_at)] = client.query(
            "SELECT event_id, occurred_at FROM predictions FINAL WHERE prediction_id = 'p-999'"
        ).result_rows
        offset = 600 + len(poison)
        assert event_id in {record_id(topics.predictions, p, offset) for p in range(2)}
        assert abs((occurred_at.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) < 300
        assert "Traceback" not in worker.log_path.read_text()
    finally:
        worker.stop()


def test_a_line_clickhouse_cannot_store_is_found_and_its_neighbours_land(
    clickhouse_server: Any, tmp_path: Path
) -> None:
    """The embedded server's engine reports success when the intake view fails: the checked count finds it."""
    settings = Settings(clickhouse_url=clickhouse_server.url, clickhouse_database=f"t_{uuid.uuid4().hex[:8]}")
    sink = ClickHouseSink(settings, create_tables=False)
    client = clickhouse_client(settings, create_database=True)
    client.command(predictions_ddl())
    for ddl in predictions_intake_ddl():
        client.command(ddl)
    now = datetime.now(UTC)
    good = [wire.encode(wire.decode_prediction(json.dumps(_event(i, now)).encode())) for i in range(9)]
    # valid JSON whose event_id the view cannot turn into a UUID: what the contract would stop, if it were asked
    bad = json.dumps(_event(100, now, event_id="not-a-uuid")).encode()
    lines = [*good[:4], bad, *good[4:]]
    try:
        assert sink.write_lines("predictions_intake", lines) == [4]
        assert int(client.command("SELECT count() FROM predictions")) == 9
    finally:
        sink.close()
        client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
