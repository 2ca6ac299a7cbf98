"""The simulated app against a fake model server (httpx MockTransport) and a fake clock; the report files."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from driftloop.demo.app import ProductionApp, Served
from driftloop.demo.dataset import StreamPlan, rainfall
from driftloop.demo.observers import DriftStatistic
from driftloop.demo.report import WindowRow, accuracy_limits, label_rows, rolling_accuracy, write_report
from driftloop.demo.summary import summarize
from driftloop.demo.timeline import Step, Timeline


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Labels:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str, str]] = []

    def log_label(self, model_name: str, prediction_id: str, label: Any) -> None:
        self.sent.append((self.clock.now, prediction_id, label))


def _server(clock: FakeClock, requests: list[tuple[float, dict[str, Any]]], swap_at: int) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append((clock.now, body))
        row = int(body["prediction_id"].rsplit("-", 1)[1])
        if row == 11_003:
            return httpx.Response(503, json={"error": {"code": "no_model"}})
        version = 1 if len(requests) <= swap_at else 2
        return httpx.Response(200, json={"model_version": version, "prediction": "rain", "latency_ms": 0.5})

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://serving")


def test_the_app_asks_at_a_steady_rate_and_reports_each_truth_after_its_delay() -> None:
    clock, requests = FakeClock(), []
    labels = Labels(clock)
    plan = StreamPlan(
        train=range(0, 10), stream=range(11_000, 11_020), change_point=11_010, rate=10.0, label_delay_s=2.0
    )
    served: list[Served] = []
    refused = []
    app = ProductionApp(
        rainfall(),
        plan,
        _server(clock, requests, swap_at=15),
        labels,
        "rain-model",
        on_served=served.append,
        on_refused=refused.append,
        clock=clock,
        sleep=clock.sleep,
        concurrency=1,
    )
    assert app.run() == served
    assert [round(at, 3) for at, _ in requests] == [i / 10 for i in range(20)]  # 10 per second, in order
    assert requests[0][1]["features"] == rainfall().features_of(11_000)
    assert [s.row for s in served] == [r for r in range(11_000, 11_020) if r != 11_003]
    assert [r.row for r in refused] == [11_003] and refused[0].status == 503
    assert {s.version for s in served[-4:]} == {2}
    assert served[0].truth == rainfall().label_of(11_000) and served[0].prediction_id == "demo-11000"
    # one label per answered request, each 1-3 s (2 s +-50%) after its request, none before
    assert len(labels.sent) == len(served) == app.labels_sent
    asked = {body["prediction_id"]: at for at, body in requests}
    for at, prediction_id, label in labels.sent:
        assert 1.0 <= at - asked[prediction_id] <= 3.0 + 1e-9
        assert label in ("rain", "dry")


def test_a_stalled_server_does_not_make_the_app_burst_afterwards() -> None:
    clock, requests = FakeClock(), []
    plan = StreamPlan(train=range(0, 10), stream=range(11_000, 11_040), change_point=11_010, rate=10.0)

    def slow(request: httpx.Request) -> httpx.Response:
        requests.append(clock.now)
        if len(requests) == 5:
            clock.now += 3.0  # the server stalls for 3 s on one request
        return httpx.Response(200, json={"model_version": 1, "prediction": "dry", "latency_ms": 1.0})

    app = ProductionApp(
        rainfall(),
        plan,
        httpx.Client(transport=httpx.MockTransport(slow), base_url="http://s"),
        Labels(clock),
        "m",
        clock=clock,
        sleep=clock.sleep,
        concurrency=1,
    )
    app.run()
    gaps = [b - a for a, b in itertools.pairwise(requests[5:])]
    assert min(gaps) >= 0.1 - 1e-9  # after the stall: still 10 per second, no catch-up burst


def test_several_requests_in_flight_answer_every_row_once_and_label_each() -> None:
    plan = StreamPlan(
        train=range(0, 10), stream=range(11_000, 11_060), change_point=11_010, rate=300.0, label_delay_s=0.02
    )

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.02)  # slower than the rate: only several requests in flight keep up
        return httpx.Response(200, json={"model_version": 1, "prediction": "dry", "latency_ms": 1.0})

    labels = Labels(FakeClock())
    app = ProductionApp(
        rainfall(),
        plan,
        httpx.Client(transport=httpx.MockTransport(slow), base_url="http://s"),
        labels,
        "m",
        concurrency=8,
    )
    began = time.monotonic()
    served = app.run()
    assert sorted(s.row for s in served) == list(plan.stream)
    assert sorted(p for _, p, _ in labels.sent) == sorted(s.prediction_id for s in served)
    assert time.monotonic() - began < 60 * 0.02  # faster than one request at a time


def test_the_report_has_the_plot_the_summary_and_the_timeline(tmp_path: Path) -> None:
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    t0 = start.timestamp()
    served = [
        Served(r, f"p{r}", t0 + r / 10, 1 if r < 300 else 2, "rain", "rain" if r % 3 else "dry", 1.0)
        for r in range(400)
    ]
    windows = [
        WindowRow("1", start, start + timedelta(seconds=10), 100, 0.66),
        WindowRow("2", start + timedelta(seconds=30), start + timedelta(seconds=40), 100, None),
        WindowRow("1", start + timedelta(seconds=30), start + timedelta(seconds=40), 0, None),
    ]
    statistics = [
        DriftStatistic(
            "1", start, start + timedelta(seconds=10), f, "wasserstein_norm", v, 0.01, 0.75, v > 0.75
        )
        for f, v in (("sea_level_pressure", 4.0), ("dew_point", 0.2))
    ]
    timeline = Timeline(lambda line: None, started_at=t0)
    timeline.add(Step.DRIFT_BEGINS, "drift", at=t0 + 10)
    timeline.add(Step.DRIFT_DETECTED, "detected", at=t0 + 20)
    timeline.add(Step.PROMOTED, "promoted", at=t0 + 29.5)
    timeline.add(Step.SERVER_SWAPPED, "swapped", at=t0 + 30)
    ranked = [
        {"feature": "sea_level_pressure", "importance": 0.4, "effect": 5.3, "score": 2.12, "ignored": False},
        {"feature": "dew_point", "importance": 0.01, "effect": 1.2, "score": 0.012, "ignored": True},
    ]
    summary = summarize(
        served, 100, 1, t0 + 20, 2, 0.7, ranked_features=ranked, importance_share_drifted=0.41
    )
    context = {"dataset": "toy", "rows replayed": range(100, 500), "thresholds": {"alpha": 0.01}}
    html_path, png_path = write_report(
        tmp_path, served, windows, statistics, timeline.entries, summary, 0.75, context, t0
    )
    assert png_path.read_bytes().startswith(b"\x89PNG")
    page = html_path.read_text()
    assert "data:image/png;base64," in page and "accuracy after recovery" in page
    assert "detected" in page
    assert "<th>drifted features</th>" in page
    assert "<td>v1</td><td>12:00:00</td><td>12:00:10</td><td>100</td><td>sea_level_pressure</td>" in page
    assert "<td>0</td>" not in page, "a window without predictions is not listed"
    assert (
        "<td>rows replayed</td><td>100-499</td>" in page and "<td>thresholds</td><td>alpha 0.01</td>" in page
    )
    assert "{" not in page.split("<h2>Run</h2>")[1], "no raw Python dict in the run table"
    mattering = page.split("<h2>Which drift matters</h2>")[1].split("<h2>")[0]
    assert "hold <b>41%</b> of what the model" in mattering
    assert "<td>sea_level_pressure</td><td>40%</td><td>5.30</td><td>2.12</td><td>counts</td>" in mattering
    assert "<td>dew_point</td><td>1%</td><td>1.20</td><td>0.01</td><td>ignored" in mattering
    assert rolling_accuracy(served[:3], width=2) == [0.0, 0.5, 1.0]


def test_mark_labels_a_second_apart_go_to_different_rows_and_far_ones_share_one() -> None:
    assert label_rows([(0, 50), (10, 60), (20, 70), (100, 140)], gap=4) == [0, 1, 2, 0]
    assert label_rows([(0, 50), (55, 90)], gap=4) == [0, 0]


def test_the_accuracy_axis_holds_every_point_drawn() -> None:
    assert accuracy_limits([0.45, 0.9]) == (0.3, 1.0)
    low, high = accuracy_limits([0.21, 0.9])
    assert low <= 0.21 - 0.05 and high == 1.0
