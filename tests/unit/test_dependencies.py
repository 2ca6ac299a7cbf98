"""What a service waits for: one shared record, as every service's health endpoint shows it."""

from __future__ import annotations

import time

from shared.dependencies import Dependencies


def test_waiting_keeps_since_when_across_retries_and_counts_changes() -> None:
    counts: list[int] = []
    deps = Dependencies(on_change=counts.append)
    before = time.time()
    deps.away("clickhouse", "refused (1)")
    first = deps.waiting()["clickhouse"]["since"]
    deps.away("clickhouse", "refused (2)")
    assert deps.waiting() == {"clickhouse": {"since": first, "error": "refused (2)"}} and first >= before
    deps.back("clickhouse")
    assert deps.waiting() == {} and counts == [1, 0]
