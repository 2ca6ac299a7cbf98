"""`driftloop bench monitor --workers`: reading Kafka's perf tools, the figures it ends with, the backlog."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner

from driftloop.bench.kafka_ceiling import BrokerCeiling, parse_consumer_summary, parse_producer_summary
from driftloop.bench.monitor_scale import backlog, models_spread_over, scale_figures, specs
from driftloop.process import InfraError

PRODUCER_OUTPUT = """\
Reading payloads from: /tmp/driftloop-ceiling-x/payloads.txt
Number of messages read: 5000
49997 records sent, 9999.4 records/sec (8.88 MB/sec), 512.3 ms avg latency, 1202.0 ms max latency.
200000 records sent, 27042.184510 records/sec (24.01 MB/sec), 401.52 ms avg latency, 1402.00 ms max \
latency, 388 ms 50th, 812 ms 95th, 1011 ms 99th, 1320 ms 99.9th.
"""

CONSUMER_OUTPUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, \
fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-07 12:56:30:101, 2026-12-07 12:56:37:020, 177.5742, 25.6647, 200000, 28905.9112, 512, 6407, \
27.7149, 31215.8576
"""


def test_the_producer_rate_is_read_from_the_final_summary_not_a_progress_line() -> None:
    assert parse_producer_summary(PRODUCER_OUTPUT) == (200_000, 27042.18451)


def test_the_consumer_rate_is_read_by_column_name() -> None:
    summary = parse_consumer_summary(CONSUMER_OUTPUT)
    assert summary["data.consumed.in.nMsg"] == 200_000
    assert summary["fetch.nMsg.sec"] == 31215.8576


@pytest.mark.parametrize("parse", [parse_producer_summary, parse_consumer_summary])
def test_output_without_a_summary_is_an_error_that_shows_it(parse: Callable[[str], object]) -> None:
    with pytest.raises(InfraError, match=r"no summary(.|\n)*Exception in thread"):
        parse("Exception in thread main: broker unreachable")


def test_the_ceiling_is_the_lower_rate_and_the_share_is_of_consuming() -> None:
    ceiling = BrokerCeiling(
        produce_events_per_s=30_000, consume_events_per_s=60_000, records=1, record_bytes=950, partitions=6
    )
    assert ceiling.events_per_s == 30_000
    figures = scale_figures({1: 15_000.4, 2: 24_000.0}, ceiling)
    assert figures == {
        "events_per_s_1w": 15_000,
        "events_per_s_2w": 24_000,
        "broker_produce_events_per_s": 30_000,
        "broker_consume_events_per_s": 60_000,
        "broker_ceiling_events_per_s": 30_000,
        "monitor_share_of_ceiling": 0.4,
    }


def test_models_are_spread_evenly_over_the_partitions_by_the_producers_hashing() -> None:
    models = models_spread_over(6, per_partition=4)
    every = list(range(6))
    assert Counter(DefaultPartitioner()(m.encode(), every, every) for m in models) == {p: 4 for p in every}


def test_the_backlog_shares_the_events_evenly_and_interleaves_the_models() -> None:
    streams = specs(["a", "b", "c"], features=10)
    events = list(backlog(streams, 3_500, datetime(2026, 1, 1, tzinfo=UTC)))
    assert len(events) == 3_500 and len({e.event_id for e in events}) == 3_500
    assert [e.model_name for e in events[999:1001]] == ["a", "b"]
    assert len(events[0].features) == 10


@pytest.mark.parametrize(
    ("workers", "says"),
    [("one,two", "comma-separated"), ("0,1", "1 or more"), ("1,7", "7 workers need as many partitions")],
)
def test_worker_counts_are_checked_before_anything_starts(workers: str, says: str) -> None:
    from typer.testing import CliRunner

    from driftloop.cli.main import app

    result = CliRunner().invoke(app, ["bench", "monitor", "--workers", workers, "--partitions", "6"])
    words = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert result.exit_code == 2 and says in words, result.output
