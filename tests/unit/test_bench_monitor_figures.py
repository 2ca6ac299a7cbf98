"""The monitor benchmark's own figures: per-stage batch times from Prometheus text, CPU time from /proc."""

from __future__ import annotations

import os
import sys

import pytest

from driftloop.bench.monitor import cpu_seconds, stage_seconds


def test_stage_seconds_are_mean_seconds_per_batch_of_each_stage() -> None:
    text = "\n".join(
        [
            "# HELP driftloop_monitor_batch_seconds Time per batch in each stage",
            'driftloop_monitor_batch_seconds_bucket{le="0.5",stage="store"} 3.0',
            'driftloop_monitor_batch_seconds_count{stage="store"} 4.0',
            'driftloop_monitor_batch_seconds_sum{stage="store"} 1.0',
            'driftloop_monitor_batch_seconds_count{stage="advance"} 2.0',
            'driftloop_monitor_batch_seconds_sum{stage="advance"} 0.5',
            'driftloop_monitor_batch_seconds_count{stage="idle"} 0.0',
            'driftloop_monitor_batch_seconds_sum{stage="idle"} 0.0',
        ]
    )
    assert stage_seconds(text) == {"store": 0.25, "advance": 0.25}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_seconds_grow_with_work_and_are_zero_for_no_process() -> None:
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))
    assert cpu_seconds(os.getpid()) > before
    assert cpu_seconds(None) == 0.0
