"""The supervisor's rules as plain data: backoff, exit reasons, what `infra down` would break."""

from __future__ import annotations

import time

from driftloop.infra.services import dependents, service_table
from driftloop.infra.stack import Component
from driftloop.infra.supervisor import Backoff, Restarts, exit_reason
from shared.settings import Settings


def test_backoff_doubles_to_its_cap_and_starts_over_only_after_a_long_enough_run() -> None:
    backoff = Backoff(initial=1.0, maximum=30.0, reset_after=30.0)
    assert [backoff.next() for _ in range(3)] == [1.0, 2.0, 4.0]
    backoff.stayed_up(29.0)  # crashed again before it settled: keep backing off
    assert backoff.next() == 8.0
    backoff.stayed_up(30.0)
    assert backoff.next() == 1.0


def test_exit_reasons_name_the_signal_or_the_code() -> None:
    assert exit_reason(-15) == "killed by SIGTERM"
    assert exit_reason(0) == "exited with code 0"
    assert exit_reason(-200) == "killed by signal 200"


def test_status_summary_says_nothing_for_a_process_that_never_stopped() -> None:
    assert Restarts().summary() == ""
    crashed = Restarts(restarts=2, last_exit="killed by SIGKILL", last_exit_at=time.time())
    assert crashed.summary().startswith("restarts 2, last exit: killed by SIGKILL at ")
    waiting = Restarts(1, "exited with code 1", time.time(), restart_due_at=time.time() + 8.4)
    assert waiting.summary().endswith("restarting in 8s")


def test_infra_down_names_only_running_services_that_need_the_stopped_servers() -> None:
    table = service_table(Settings(artifact_root="s3://bucket/models"))
    running = ["registry", "ingest", "monitor", "serving"]
    assert dependents(table, running, [Component.S3]) == {Component.S3: ["registry"]}
    assert dependents(table, ["ingest"], [Component.CLICKHOUSE]) == {}
    kafka = dependents(table, running, [Component.KAFKA])[Component.KAFKA]
    assert kafka == ["registry", "ingest", "monitor", "serving"]
