"""``driftloop demo`` end to end: start a private system, register the first model, replay the drifting
stream through the model server, watch the loop react, then summarise and write the report.

:func:`closed_loop` is the loop itself on any settings (the e2e test runs it on the test session's Kafka and
ClickHouse); :func:`run_demo` adds what the command needs around it: a fresh private data folder, free ports
and the default plan.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from driftloop.demo.app import ProductionApp, Served
from driftloop.demo.dataset import DriftingDataset, StreamPlan, rainfall, rainfall_plan
from driftloop.demo.model import (
    FirstVersion,
    drift_thresholds,
    estimator_name,
    oracle_accuracy,
    train_first_version,
)
from driftloop.demo.observers import (
    DriftStatistic,
    Seen,
    TopicWatcher,
    WindowPoller,
    WindowSeen,
    read_drift_statistics,
    read_windows,
)
from driftloop.demo.registration import register_first_version
from driftloop.demo.report import WindowRow, write_report
from driftloop.demo.screenshots import console_screenshots
from driftloop.demo.summary import Summary, summarize
from driftloop.demo.system import (
    Pace,
    RunningSystem,
    demo_settings,
    exclusive,
    fresh_data_dir,
    running_system,
)
from driftloop.demo.timeline import (
    Entry,
    Step,
    Timeline,
    TrafficProgress,
    ranking_text,
    step_for_event,
    window_text,
)
from driftloop.infra.services import ServiceStatus
from driftloop.infra.stack import ComponentStatus
from driftloop.process import InfraError
from shared.events import RankedFeature
from shared.settings import Settings

MODEL_NAME = "rainfall"
FIRST_VERSION = 1
SERVER_READY_TIMEOUT_S = 60.0
ROWS_PER_WINDOW = 480


@dataclass(frozen=True)
class DemoResult:
    """Everything a run saw: the summary, the timeline, the app's answers, the loop's events and windows."""

    summary: Summary
    timeline: Timeline
    served: list[Served]
    seen: list[Seen]
    windows: list[WindowRow]
    statistics: list[DriftStatistic]
    report_path: Path | None
    png_path: Path | None
    settings: Settings
    context: dict[str, Any] = field(default_factory=dict)
    screenshots: list[Path] = field(default_factory=list)


def _status_line(status: ServiceStatus | ComponentStatus) -> str:
    name = status.name if isinstance(status, ServiceStatus) else status.component.value
    return f"{name} {'up' if status.up else 'DOWN'} at {status.address} ({status.note})"


def wait_until_serving(serving: httpx.Client, version: int, timeout: float = SERVER_READY_TIMEOUT_S) -> float:
    """Poll the model server's /healthz until it serves ``version``; returns the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            response = serving.get("/healthz")
            if response.status_code == 200 and response.json().get("version") == version:
                return time.monotonic() - began
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise InfraError(f"the model server did not serve version {version} within {timeout:.0f}s; see its log")


def closed_loop(
    settings: Settings,
    data: DriftingDataset,
    plan: StreamPlan,
    echo: Callable[[str], None],
    *,
    out_dir: Path | None,
    start_infra: bool = True,
    model_name: str = MODEL_NAME,
    recipe: dict[str, Any] | None = None,
    stop_after_new_answers: int | None = None,
    open_console: bool = False,
) -> DemoResult:
    """Run the loop once on ``settings`` and return what happened; stops every process it started.

    ``stop_after_new_answers`` ends the stream once retrained versions have answered that many requests;
    without it the whole planned stream is replayed.
    """
    timeline = Timeline(echo)
    threshold = drift_thresholds().numeric_effect
    shots: list[Path] = []

    def started(status: ServiceStatus | ComponentStatus) -> None:
        timeline.add(Step.SYSTEM_UP, _status_line(status))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-first-version") as pool:
        first = pool.submit(train_first_version, data, plan)  # while the system starts
        with running_system(settings, start_infra=start_infra, report=started) as system:
            console = f"http://{settings.console_host}:{settings.console_port}"
            echo(f"console: {console} (live while the demo runs)")
            if open_console:
                _open_browser(console, echo)
            served, seen, windows, statistics = _drive(
                system, data, plan, first.result(), timeline, model_name, recipe, stop_after_new_answers
            )
            if out_dir is not None:  # while the system still runs: the pages after the loop closed
                shots = console_screenshots(console, model_name, out_dir, echo)
    promotions = timeline.all(Step.PROMOTED)
    promoted_version = int(promotions[-1].data["version"]) if promotions else None
    detected = timeline.first(Step.DRIFT_DETECTED, version=str(FIRST_VERSION))
    named = next((e for e in timeline.all(Step.DRIFT_DETECTED) if e.data.get("features")), None)
    finished = next(
        (e for e in timeline.all(Step.TRAINING_FINISHED) if e.data.get("version") == promoted_version), None
    )
    after_rows = [s.row for s in served if s.version != FIRST_VERSION]
    oracle = oracle_accuracy(data, after_rows) if after_rows else None
    summary = summarize(
        served,
        plan.change_point,
        FIRST_VERSION,
        detected.at if detected is not None else None,
        promoted_version,
        oracle,
        drifted_features=list(named.data["features"]) if named is not None else [],
        drift_ranking=_ranking(named),
        importance_share_drifted=named.data.get("importance_share_drifted") if named is not None else None,
        ranked_features=list(named.data.get("ranked", [])) if named is not None else [],
        refused=len(timeline.all(Step.REFUSED)),
        challenger_score=finished.data["challenger"] if finished is not None else None,
        champion_score=finished.data["champion"] if finished is not None else None,
        run_seconds=round(time.time() - timeline.started_at, 1),
    )
    context = {
        "dataset": data.source,
        "first version trained on rows": plan.train,
        "rows replayed": plan.stream,
        "documented change point": f"row {plan.change_point:,}",
        "requests per second": plan.rate,
        "label delay seconds": f"{plan.label_delay_s:g} (+-50%)",
        "window seconds": settings.monitor_window_seconds,
        "label wait seconds": settings.monitor_label_wait_seconds,
        "drift thresholds": drift_thresholds().model_dump(),
        "logs": str(settings.data_dir.resolve() / "logs"),
    }
    report = png = None
    if out_dir is not None:
        report, png = write_report(
            out_dir, served, windows, statistics, timeline.entries, summary, threshold, context,
            timeline.started_at,
        )  # fmt: skip
        summary = replace(summary, report_path=str(report))
    return DemoResult(
        summary, timeline, served, seen, windows, statistics, report, png, settings, context, shots
    )


def _open_browser(url: str, echo: Callable[[str], None]) -> None:
    """Open ``url`` in the desktop's browser; without a display a text browser would take the terminal."""
    if sys.platform != "darwin" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        echo(f"no display here: open {url} in a browser on this machine (or through an SSH tunnel)")
        return
    if not webbrowser.open(url):
        echo(f"could not start a browser: open {url} yourself")


def _ranking(named: Entry | None) -> str:
    """The first feature alert's ranking as the timeline wrote it ("" when it had none)."""
    if named is None or not named.data.get("ranked"):
        return ""
    ranked = [RankedFeature.model_validate(f) for f in named.data["ranked"]]
    return ranking_text(ranked, named.data.get("importance_share_drifted"))


def _drive(
    system: RunningSystem,
    data: DriftingDataset,
    plan: StreamPlan,
    first: FirstVersion,
    timeline: Timeline,
    model_name: str,
    recipe: dict[str, Any] | None,
    stop_after_new_answers: int | None,
) -> tuple[list[Served], list[Seen], list[WindowRow], list[DriftStatistic]]:
    from shared.clickhouse import clickhouse_client
    from shared.sdk import Driftloop, ProducerConfig

    settings = system.settings
    with httpx.Client(base_url=settings.registry_url, timeout=60) as registry:
        version = register_first_version(registry, model_name, data, plan, first, recipe)
    timeline.add(
        Step.MODEL_REGISTERED,
        f"registry: {model_name} v{version}, {estimator_name()} on rows {first.fit_rows.start:,}-"
        f"{first.fit_rows.stop - 1:,} (validation accuracy {first.validation_accuracy:.3f} on rows "
        f"{first.validation_rows.start:,}-{first.validation_rows.stop - 1:,}), reference profile, "
        f"production -> v{version}",
        version=version,
    )

    def on_event(s: Seen) -> None:
        step = step_for_event(s, version)
        if step is not None:
            timeline.add(step[0], step[1], at=s.at, **step[2])

    def on_window(w: WindowSeen) -> None:
        if w.count == 0:  # an old version's windows after the swap: nothing to show
            return
        timeline.add(Step.WINDOW, window_text(w), version=w.version, labelled=w.accuracy is not None)

    watcher = TopicWatcher(settings, model_name, on_event)
    poller = WindowPoller(settings, model_name, on_window)
    watcher.start()
    poller.start()
    progress = TrafficProgress(timeline, plan.change_point, version)
    stop = threading.Event()
    new_answers = 0

    def on_served(s: Served) -> None:
        nonlocal new_answers
        progress.served(s)
        new_answers += s.version != version
        if stop_after_new_answers is not None and new_answers >= stop_after_new_answers:
            stop.set()

    try:
        with (
            httpx.Client(base_url=system.serving_url, timeout=10) as serving,
            Driftloop(ProducerConfig.from_settings(settings, app_name="demo-app")) as sdk,
        ):
            waited = wait_until_serving(serving, version)
            timeline.add(
                Step.SERVER_READY,
                f"model server: {model_name}@production v{version} loaded ({waited:.1f}s after registration)",
                version=version,
            )
            app = ProductionApp(
                data, plan, serving, sdk, model_name, on_served=on_served, on_refused=progress.refused
            )
            timeline.add(
                Step.TRAFFIC,
                f"app: replaying rows {plan.stream.start:,}-{plan.stream.stop - 1:,} at {plan.rate:.0f} "
                f"requests/s; the truth follows {plan.label_delay_s:.0f}s (+-50%) later through the SDK; "
                f"the drift starts at row {plan.change_point:,}",
            )
            served = app.run(stop)
            sdk.flush(timeout=15)
        timeline.add(
            Step.TRAFFIC_DONE,
            f"app: {len(served):,} predictions answered, {len(app.refused)} refused, "
            f"{app.labels_sent:,} labels sent",
        )
        client = clickhouse_client(settings)
        try:
            _wait_until_stored(client, model_name, len(served), app.labels_sent, timeline)
            windows = [WindowRow(*w) for w in read_windows(client, model_name)]
            statistics = read_drift_statistics(client, model_name)
        finally:
            client.close()
    finally:
        poller.stop()
        watcher.stop()
    return served, list(watcher.seen), windows, statistics


STORED_SQL = """
SELECT (SELECT count() FROM predictions FINAL WHERE model_name = {model:String}),
       (SELECT count() FROM labels FINAL WHERE model_name = {model:String})
"""


def _wait_until_stored(
    client: Any, model_name: str, predictions: int, labels: int, timeline: Timeline, timeout: float = 30.0
) -> None:
    """Wait until ClickHouse holds every prediction the server made and every label the app sent."""
    began = time.monotonic()
    stored = (0, 0)
    while time.monotonic() - began < timeout:
        row = client.query(STORED_SQL, parameters={"model": model_name}).result_rows[0]
        stored = (int(row[0]), int(row[1]))
        if stored[0] >= predictions and stored[1] >= labels:
            break
        time.sleep(0.5)
    timeline.add(
        Step.STORED,
        f"clickhouse: {stored[0]:,} of {predictions:,} predictions and {stored[1]:,} of {labels:,} labels "
        f"stored by the monitor ({time.monotonic() - began:.1f}s after the last request)",
        predictions=stored[0],
        labels=stored[1],
    )


@dataclass(frozen=True)
class DemoOptions:
    """What ``driftloop demo`` was asked for."""

    fast: bool = False
    rate: float | None = None
    out_dir: Path | None = None
    open_console: bool = False

    @property
    def after_answers(self) -> int:
        """Answers of retrained versions after which the stream ends (enough to measure the recovery)."""
        return 600 if self.fast else 1_500


def run_demo(base: Settings, options: DemoOptions, echo: Callable[[str], None]) -> DemoResult:
    """The demo in a private system under ``<data_dir>/demo``; the report goes to ``<data_dir>/demo-report``."""
    data_dir = (base.data_dir / "demo").resolve()
    plan = rainfall_plan(rate=options.rate)
    # windows of about 480 requests whatever the rate: three of them hold more post-drift rows than the
    # recipe trains on, so the retrained model never learns from rows before the change
    pace = Pace(window_seconds=max(4, round(ROWS_PER_WINDOW / plan.rate)))
    settings = demo_settings(base, data_dir, MODEL_NAME, pace)
    out_dir = options.out_dir or (base.data_dir / "demo-report").resolve()
    echo(
        f"Driftloop demo: {MODEL_NAME} model on {rainfall().source}; up to {len(plan.stream):,} requests at "
        f"{plan.rate:.0f}/s, ending {options.after_answers:,} answers after a retrained model serves; "
        f"system in {data_dir}"
    )
    with exclusive(data_dir):
        fresh_data_dir(settings)
        return closed_loop(
            settings,
            rainfall(),
            plan,
            echo,
            out_dir=out_dir,
            stop_after_new_answers=options.after_answers,
            open_console=options.open_console,
        )
