"""How a worker turns records into rows and offsets: dead letters, registry announcements, commits."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import TopicPartition

from services.monitor.domain.batches import MIN_INSERT_ROWS, decode_batch, insert_pieces
from services.monitor.domain.intake import record_id
from services.monitor.domain.tables import MODEL_EVENTS, dead_letter_rows, model_event_rows
from services.monitor.entrypoints.stream import by_topic, next_offsets
from shared import codec, wire
from shared.events import (
    AliasAction,
    AliasChanged,
    EventDeadLettered,
    ModelCreated,
    ModelDeleted,
    ModelUpdated,
    ModelVersionRegistered,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class Rec:
    """A Kafka record as the monitor reads it (aiokafka's ``ConsumerRecord`` has these and more)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp: int | None = None


def test_dead_letters_keep_reason_and_original_bytes_and_unreadable_ones_are_kept_whole() -> None:
    letter = EventDeadLettered(
        model_name="churn",
        source="http:ingest",
        reason="invalid_json",
        detail="line 1",
        original=b"\xff{oops",
    )
    rows = dead_letter_rows([Rec("dl", 0, 7, codec.encode(letter)), Rec("dl", 1, 3, b"not json")], NOW)
    assert rows[0][:6] == [letter.event_id, "churn", "http:ingest", "invalid_json", "line 1", b"\xff{oops"]
    assert rows[1][1:4] == ["unknown", "topic:dl", "undecodable_dead_letter"]
    assert rows[1][5] == b"not json" and rows[1][6:8] == [1, 3]


def test_undecodable_records_get_an_id_that_is_the_same_on_replay() -> None:
    assert record_id(Rec("t", 0, 5, b"")) == record_id(Rec("t", 0, 5, b"x"))
    assert record_id(Rec("t", 0, 5, b"")) != record_id(Rec("t", 0, 6, b""))
    assert record_id(Rec("t", 0, 5, b"")) != record_id(Rec("t", 1, 5, b""))


def test_registry_announcements_become_rows_that_say_which_version_an_alias_pointed_at() -> None:
    moved = AliasChanged(
        model_name="churn",
        alias="production",
        action=AliasAction.ROLLED_BACK,
        version=2,
        previous_version=3,
        changed_by="ana",
    )
    registered = ModelVersionRegistered(
        model_name="churn", version=3, artifact_uri="s3://m/3", artifact_sha256="a" * 64, created_by="trainer"
    )
    rows, bad = model_event_rows(
        [
            Rec("me", 0, 0, codec.encode(moved)),
            Rec("me", 0, 1, codec.encode(registered)),
            Rec("me", 0, 2, b"{}"),
        ],
        NOW,
    )
    assert rows[0][1:8] == ["alias_changed", "churn", 2, "production", "rolled_back", 3, "ana"]
    assert rows[1][1:8] == ["model_version_registered", "churn", 3, "", "", None, "trainer"]
    assert [r.offset for r, _ in bad] == [2]


def test_a_registration_row_keeps_the_versions_artifact_metrics_and_lineage_for_sql() -> None:
    cols = [name for name, _ in MODEL_EVENTS.columns]
    registered = ModelVersionRegistered(
        model_name="churn",
        version=4,
        artifact_uri="s3://m/4",
        artifact_sha256="b" * 64,
        created_by="trainer",
        artifact_size=12_345,
        metrics={"accuracy": 0.91, "f1": 0.88},
        lineage={"dataset_sha256": "c" * 64, "parent_version": 3, "code_version": "abc123"},
    )
    old = json.loads(codec.encode(registered))
    for field in ("artifact_size", "metrics", "lineage"):  # as a registry before this release sent it
        del old[field]
    moved = AliasChanged(
        model_name="churn", alias="production", action=AliasAction.MOVED, version=4, changed_by="x"
    )
    rows, bad = model_event_rows(
        [
            Rec("me", 0, 0, codec.encode(registered)),
            Rec("me", 0, 1, json.dumps(old).encode()),
            Rec("me", 0, 2, codec.encode(moved)),
        ],
        NOW,
    )
    assert bad == []
    new, before, alias = (dict(zip(cols, r, strict=True)) for r in rows)
    assert (new["artifact_uri"], new["artifact_sha256"], new["artifact_size"]) == (
        "s3://m/4",
        "b" * 64,
        12_345,
    )
    assert new["metrics"] == {"accuracy": 0.91, "f1": 0.88}
    assert json.loads(new["lineage"]) == {
        "dataset_sha256": "c" * 64,
        "parent_version": 3,
        "code_version": "abc123",
    }
    assert (before["artifact_sha256"], before["artifact_size"], before["metrics"]) == ("b" * 64, None, {})
    assert (alias["artifact_uri"], alias["artifact_size"], alias["metrics"], alias["lineage"]) == (
        "",
        None,
        {},
        "",
    )


def test_every_registry_event_row_names_who_did_it() -> None:
    events = [
        ModelCreated(model_name="churn", created_by="ana"),
        ModelUpdated(model_name="churn", changed_fields=["tags"], updated_by="bo"),
        ModelDeleted(model_name="churn", deleted_by="admin"),
    ]
    rows, _ = model_event_rows([Rec("me", 0, i, codec.encode(e)) for i, e in enumerate(events)], NOW)
    actor = [name for name, _ in MODEL_EVENTS.columns].index("actor")
    assert [r[actor] for r in rows] == ["ana", "bo", "admin"]


def test_a_batch_splits_good_from_bad_records_with_the_reason() -> None:
    good = wire.encode(
        wire.PredictionWire(
            model_name="m", model_version="1", prediction_id="p", features={"x": 1.0}, prediction=1
        )
    )
    heads, ok, bad = decode_batch([Rec("p", 0, 0, good), Rec("p", 0, 1, b"{")], wire.decode_prediction)
    assert [h.model_name for h in heads] == ["m"] and [r.offset for r in ok] == [0]
    assert bad[0][0].offset == 1 and bad[0][1]


def test_commits_point_past_each_partitions_last_record_and_topics_keep_partition_order() -> None:
    a0, a1, b0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)
    batch = {
        a0: [Rec("a", 0, 10, b""), Rec("a", 0, 11, b"")],
        a1: [Rec("a", 1, 4, b"")],
        b0: [],
    }
    assert next_offsets(batch) == {a0: 12, a1: 5}
    grouped = by_topic(batch)
    assert [(r.partition, r.offset) for r in grouped["a"]] == [(0, 10), (0, 11), (1, 4)]


def test_a_big_batch_is_split_into_consecutive_pieces_and_a_small_one_stays_whole() -> None:
    lines = [str(i).encode() for i in range(25_001)]
    pieces = insert_pieces(lines, 2)
    assert [len(p) for p in pieces] == [12_501, 12_500]
    assert [line for piece in pieces for line in piece] == lines  # every event once, in order

    small = lines[: 2 * MIN_INSERT_ROWS - 1]
    assert insert_pieces(small, 2) == [small]  # halves would be under the smallest piece
    assert insert_pieces(lines, 1) == [lines]
    assert insert_pieces([], 2) == [[]]
