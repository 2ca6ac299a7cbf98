"""A seeded loop for the web console, and ``driftloop bench console``: how fast its pages load with history.

:func:`seed_registry` registers a model's versions (with metrics, lineage, a reference profile) and moves
its production alias through the registry's API, as the trainer and a user would; :func:`seed_warehouse`
writes what the monitor, trainer and validator would have written to ClickHouse (windows with accuracy,
drift tests and an alert whose window holds shifted predictions, training runs, dead letters), through
the services' own table declarations. The browser tests use a small one, the benchmark a large one.
"""

from __future__ import annotations

import functools
import io
import json
import random
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from driftloop.process import ManagedProcess, free_port, spawn, wait_until
from services.monitor.adapters.clickhouse import storage
from services.monitor.domain import tables
from services.trainer.domain.run_table import RUN_COLUMNS, training_runs_ddl
from shared.events import DriftEvidence
from shared.profile import build_profile
from shared.registry_auth import registry_headers

FEATURES = ("tenure", "spend", "plan")
PLANS = ("basic", "plus", "pro")


@dataclass(frozen=True)
class SeededLoop:
    """What a seeded loop holds, for tests to check pages against."""

    model: str
    versions: int
    windows: int
    drift_event_id: uuid.UUID
    drift_window: tuple[datetime, datetime]
    production: int


def _reference(rng: random.Random, shift: float = 0.0, n: int = 400) -> dict[str, list[Any]]:
    return {
        "tenure": [rng.gauss(24 + shift, 6) for _ in range(n)],
        "spend": [rng.lognormvariate(3, 0.4) for _ in range(n)],
        "plan": [rng.choice(PLANS) for _ in range(n)],
    }


def seed_registry(
    registry: str, token: str, model: str, versions: int, *, seed: int = 7, trainer_token: str | None = None
) -> int:
    """Registers ``versions`` versions of ``model`` and moves production through the last two; returns the
    version production points at (the last one, set by ``trainer_token`` when given)."""
    rng = random.Random(seed)
    headers = registry_headers(token)
    with httpx.Client(base_url=registry, timeout=30) as http:
        schema = {
            "features": [
                {"name": "tenure", "type": "numeric"},
                {"name": "spend", "type": "numeric"},
                {"name": "plan", "type": "categorical"},
            ]
        }
        created = http.post(
            "/models",
            json={"name": model, "description": "churn, seeded", "feature_schema": schema},
            headers=headers,
        )
        created.raise_for_status()
        profile = build_profile(_reference(rng), metrics={"accuracy": 0.9}).model_dump(mode="json")
        started = datetime.now(UTC) - timedelta(days=2)
        for v in range(1, versions + 1):
            meta: dict[str, Any] = {
                "metrics": {
                    "accuracy": round(0.86 + 0.04 * rng.random(), 4),
                    "f1": round(0.8 + 0.1 * rng.random(), 4),
                },
                "lineage": {
                    "dataset_uri": f"file:///snapshots/{model}/{v}.parquet",
                    "dataset_sha256": f"{v:064x}",
                    "dataset_query": f"SELECT * FROM predictions WHERE model_name = '{model}'",
                    "data_start": (started + timedelta(hours=v)).isoformat(),
                    "data_end": (started + timedelta(hours=v + 1)).isoformat(),
                    "code_version": "seeded",
                    **({"parent_version": v - 1} if v > 1 else {}),
                },
            }
            if v <= 3 or v == versions:
                meta["reference_profile"] = profile
            response = http.post(
                f"/models/{model}/versions/upload",
                files={"artifact": ("model.joblib", io.BytesIO(f"model {model} v{v}".encode() * 50))},
                data={"metadata": json.dumps(meta)},
                headers=headers,
            )
            response.raise_for_status()
        moves = [(1, "first production version", token)]
        if versions > 1:
            moves.append((versions, "retrained after drift", trainer_token or token))
        for version, reason, who in moves:
            http.put(
                f"/models/{model}/aliases/production",
                json={"version": version, "reason": reason},
                headers=registry_headers(who),
            ).raise_for_status()
    return moves[-1][0]


def seed_warehouse(
    client: Any, model: str, windows: int, *, versions: int = 2, window_s: int = 60, seed: int = 7
) -> SeededLoop:
    """The monitor's, trainer's and validator's rows of a loop that drifted two thirds of the way through
    ``windows`` windows (ending now) on v1 and recovered on the last version."""
    rng = random.Random(seed)
    for ddl in [*storage.schema(), training_runs_ddl()]:
        client.command(ddl)
    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(seconds=window_s * windows)
    drift_at = int(windows * 0.6)
    promoted_at = int(windows * 0.8)
    metrics, tests = [], []
    computed = now
    for i in range(windows):
        start = first + timedelta(seconds=window_s * i)
        end = start + timedelta(seconds=window_s)
        version = "1" if i < promoted_at else str(versions)
        count = 100 + rng.randint(0, 40)
        drifted = drift_at <= i < promoted_at
        accuracy = (0.72 if drifted else 0.9) + rng.uniform(-0.03, 0.03)
        labelled = count - rng.randint(0, 10)
        for metric, value in (("count", count), ("labelled", labelled), ("accuracy", accuracy)):
            metrics.append([model, version, start, end, metric, "", float(value), computed])
        metrics.append(
            [model, version, start, end, "feature_mean", "tenure", 24.0 + (8 if drifted else 0), computed]
        )
        if i >= windows - 50 or i == drift_at:
            for feature, test, stat, p, thr in (
                ("tenure", "ks", 0.4 if drifted else 0.05, 1e-6 if drifted else 0.6, None),
                ("tenure", "wasserstein_norm", 1.3 if drifted else 0.05, None, 0.5),
                ("plan", "chi2", 30.0 if drifted else 1.0, 1e-5 if drifted else 0.7, None),
                ("plan", "jensen_shannon", 0.2 if drifted else 0.01, None, 0.1),
            ):
                tests.append(
                    [
                        model,
                        version,
                        start,
                        end,
                        feature,
                        test,
                        stat,
                        p,
                        thr,
                        400,
                        count,
                        int(drifted),
                        computed,
                    ]
                )
    client.insert("window_metrics", metrics, column_names=tables.WINDOW_METRICS.column_names)
    client.insert("drift_tests", tests, column_names=tables.DRIFT_TESTS.column_names)

    w_start = first + timedelta(seconds=window_s * drift_at)
    w_end = w_start + timedelta(seconds=window_s)
    event_id = uuid.uuid4()
    evidence = [
        DriftEvidence(feature="tenure", test="ks+wasserstein_norm", statistic=0.4, p_value=1e-6, threshold=0.5,
                      effect_size=1.3, reference_size=400, current_size=120, drifted=True),
        DriftEvidence(feature="plan", test="chi2+jensen_shannon", statistic=30.0, p_value=1e-5, threshold=0.1,
                      effect_size=0.2, reference_size=400, current_size=120, drifted=True),
    ]  # fmt: skip
    recovered_at = first + timedelta(seconds=window_s * (promoted_at + 2))
    events = [
        [event_id, "drift_detected", model, "1", w_end + timedelta(seconds=5), w_start, w_end, ["feature"], 1.3,
         ["tenure", "plan"], json.dumps([e.model_dump(mode="json") for e in evidence])],
        [uuid.uuid4(), "drift_recovered", model, str(versions), recovered_at, recovered_at - timedelta(seconds=window_s),
         recovered_at, [], 0.0, [], "[]"],
    ]  # fmt: skip
    # the announcement's own columns; newer ones (a ranking, ...) keep their defaults
    columns = tables.DRIFT_EVENTS.column_names[: len(events[0])]
    client.insert("drift_events", events, column_names=columns)

    shifted = _reference(rng, shift=10.0, n=120)
    predictions = []
    for k in range(120):
        at = w_start + timedelta(seconds=window_s * k / 120)
        predictions.append(
            [uuid.uuid4(), model, "1", f"p{k}", at, {"tenure": shifted["tenure"][k], "spend": shifted["spend"][k]},
             {"plan": "pro" if k % 3 else shifted["plan"][k]}, [], "1", 1.0, {}, 3.0, at]
        )  # fmt: skip
    client.insert("predictions", predictions, column_names=tables.PREDICTIONS.column_names)

    run_at = w_end + timedelta(seconds=30)
    runs = [
        {"status": "rejected", "reason": "drift", "promoted": 0, "challenger_score": 0.84, "champion_score": 0.86,
         "detail": "not promoted: needs a gain of +0.01 (min_improvement), got -0.02", "model_version": None},
        {"status": "finished", "reason": "drift", "promoted": 1, "challenger_score": 0.91, "champion_score": 0.74,
         "detail": "promoted: +0.17 over the champion", "model_version": versions},
    ]  # fmt: skip
    rows = []
    for n, run in enumerate(runs):
        started = run_at + timedelta(minutes=2 * n)
        run |= {
            "run_id": uuid.uuid4(), "model_name": model, "trigger_event_id": event_id, "metric": "accuracy",
            "started_at": started, "finished_at": started + timedelta(seconds=40), "wall_s": 40.0, "cpu_s": 35.5,
            "peak_memory_mb": 310.0, "rows": 12000, "bytes_read": 2_400_000, "artifact_bytes": 180_000,
        }  # fmt: skip
        rows.append([run.get(c) for c in RUN_COLUMNS])
    client.insert("training_runs", rows, column_names=RUN_COLUMNS)

    letters = []
    for k in range(12):
        reason = ("invalid_json", "unknown_model", "schema_mismatch")[k % 3]
        at = now - timedelta(minutes=3 * k + 1)
        original = (
            b'{"model_name": "churn", "features": {"tenure": "abc"}'
            if reason != "invalid_json"
            else b"{not json"
        )
        letters.append(
            [uuid.uuid4(), model, "topic:predictions-raw", reason, f"{reason} #{k}", original, 0, k, at, at]
        )
    client.insert("dead_letters", letters, column_names=tables.DEAD_LETTERS.column_names)
    return SeededLoop(model, versions, windows, event_id, (w_start, w_end), versions)


# -- a registry and a console on free ports ----------------------------------------------------------------

TOKENS = {
    "r-token": "rita:reader",
    "w-token": "wes:writer",
    "a-token": "ada:admin",
    "t-token": "trainer:writer",
}
"""The registry tokens of a seeded system: a reader, a writer, an admin and the trainer."""


@contextmanager
def console_system(
    data_dir: Path, clickhouse_url: str, database: str, *, refresh_s: float = 5.0
) -> Iterator[dict[str, str]]:
    """A registry (no Kafka: its relay is off) and a console on free ports, reading ``database``; yields
    their URLs. Both are real processes, stopped on exit; their logs are in ``data_dir``."""
    registry_port, console_port = free_port(), free_port()
    urls = {"registry": f"http://127.0.0.1:{registry_port}", "console": f"http://127.0.0.1:{console_port}"}
    env = {
        "DRIFTLOOP_DATA_DIR": str(data_dir),
        "DRIFTLOOP_REGISTRY_URL": urls["registry"],
        "DRIFTLOOP_REGISTRY_TOKENS": json.dumps(TOKENS),
        "DRIFTLOOP_REGISTRY_RELAY_ENABLED": "false",
        "DRIFTLOOP_CLICKHOUSE_URL": clickhouse_url,
        "DRIFTLOOP_CLICKHOUSE_DATABASE": database,
        "DRIFTLOOP_CONSOLE_PORT": str(console_port),
        "DRIFTLOOP_CONSOLE_REFRESH_SECONDS": str(refresh_s),
        "DRIFTLOOP_LOG_LEVEL": "WARNING",
    }
    started: list[ManagedProcess] = []
    try:
        for name, module, url, path in (
            ("registry", "services.registry", urls["registry"], "/healthz"),
            ("console", "services.console", urls["console"], "/health"),
        ):
            managed = spawn(name, [sys.executable, "-m", module], data_dir / f"{name}.log", env=env)
            started.append(managed)
            wait_until(
                functools.partial(_answers, url + path),
                timeout=90,
                what=name,
                proc=managed.proc,
                log_path=managed.log_path,
            )
        yield urls
    finally:
        for managed in reversed(started):
            managed.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# -- the benchmark ------------------------------------------------------------------------------------------


PAGES = {
    "models": "/",
    "model": "/models/{model}",
    "drift": "/models/{model}/drift",
    "training": "/models/{model}/training",
    "dead_letters": "/dead-letters",
}


def _median(values: list[float]) -> float:
    return round(sorted(values)[len(values) // 2], 3)


def time_pages(console: str, token: str, model: str, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Per page: the median and worst seconds to fetch its HTML (the server's work), its size, and, when
    chromium is here, the median seconds until a headless browser has loaded and drawn it."""
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=console, timeout=60) as http:
        if http.post("/login", data={"token": token}).status_code != 303:
            raise RuntimeError("the console did not accept the reader token")
        for name, path in PAGES.items():
            url = path.format(model=model)
            http.get(url).raise_for_status()  # warm: connections, caches
            took = []
            for _ in range(repeats):
                began = time.perf_counter()
                response = http.get(url)
                took.append(time.perf_counter() - began)
                response.raise_for_status()
            out[name] = {
                "median_s": _median(took),
                "max_s": round(max(took), 3),
                "bytes": len(response.content),
            }
    for name, seconds in _browser_times(console, token, model, repeats).items():
        out[name]["browser_median_s"] = seconds
    return out


def _browser_times(console: str, token: str, model: str, repeats: int) -> dict[str, float]:
    """Median seconds from navigation to the ``load`` event in headless chromium (HTML, CSS, script, layout)."""
    from driftloop.demo.screenshots import why_not

    reason = why_not()
    if reason is not None:
        print(f"browser timings skipped: {reason}")
        return {}
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto(f"{console}/login")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            for name, path in PAGES.items():
                took = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    page.goto(console + path.format(model=model), wait_until="load")
                    took.append(time.perf_counter() - began)
                out[name] = _median(took)
        finally:
            browser.close()
    return out


TARGET_S = 1.0
"""Issue 22: a page with 1,000 versions and 10,000 windows loads in under a second."""


def main(versions: int = 1000, windows: int = 10_000, repeats: int = 5) -> dict[str, Any]:
    """Seed one model with ``versions`` versions and ``windows`` windows (a week of 60 s windows is
    10,080), start the embedded ClickHouse server, a registry and a console, and time every page."""
    import tempfile

    import clickhouse_connect

    from driftloop.clickhouse_server import server_url, start_clickhouse_server

    root = Path(tempfile.mkdtemp(prefix="driftloop-bench-console-"))
    port = free_port()
    clickhouse = start_clickhouse_server("127.0.0.1", port, root / "clickhouse", root / "clickhouse.log")
    try:
        admin = clickhouse_connect.get_client(host="127.0.0.1", port=port)
        admin.command("CREATE DATABASE IF NOT EXISTS bench_console")
        client = clickhouse_connect.get_client(host="127.0.0.1", port=port, database="bench_console")
        model = "churn"
        began = time.perf_counter()
        # windows 60 s apart up to now: a week's on the drift page, the last day's on Models
        seed_warehouse(client, model, windows, versions=versions, window_s=60)
        warehouse_s = time.perf_counter() - began
        with console_system(root, server_url("127.0.0.1", port), "bench_console") as urls:
            began = time.perf_counter()
            seed_registry(urls["registry"], "a-token", model, versions, trainer_token="t-token")
            registry_s = time.perf_counter() - began
            print(
                f"seeded {versions:,} versions in {registry_s:.1f} s and {windows:,} windows in "
                f"{warehouse_s:.1f} s; loading each page {repeats} times",
                flush=True,
            )
            figures = time_pages(urls["console"], "r-token", model, repeats)
    finally:
        clickhouse.stop()
        shutil.rmtree(root, ignore_errors=True)
    print("  page           HTML median  HTML worst  in chromium       size")
    for page, f in figures.items():
        slowest = max(f["median_s"], f.get("browser_median_s", 0.0))
        browser = f"{f['browser_median_s']:8.3f} s" if "browser_median_s" in f else "         —"
        print(
            f"  {page:<13} {f['median_s']:9.3f} s {f['max_s']:9.3f} s {browser}  {f['bytes'] / 1e3:7.1f} kB  "
            f"{'ok' if slowest < TARGET_S else 'SLOW'}"
        )
    result = {
        "bench": "console",
        "versions": versions,
        "windows": windows,
        "target_s": TARGET_S,
        "pages": figures,
        "all_under_target": all(
            max(f["median_s"], f.get("browser_median_s", 0.0)) < TARGET_S for f in figures.values()
        ),
    }
    print(json.dumps(result))
    return result
