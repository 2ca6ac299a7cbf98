"""Benchmark: events/s end to end with an app and the monitor on one machine: produce, validate, monitor, store.

``driftloop bench monitor`` times the monitor alone, on events already in Kafka. Here an app logs
predictions through the SDK while everything downstream runs at once on the same cores, as on a laptop or a
single VM: the SDK ships to the raw topic, the validator checks each event against the model's schema in the
registry and forwards it, one monitor worker judges and stores it in ClickHouse. The clock runs from the
app's first ``log_prediction`` to the moment ClickHouse counts the last row; every event must be stored
once. CPU per event is read from /proc for each process (the bench process is the app; Kafka and ClickHouse
when the bench started them).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Secret, SecretStr

from driftloop.bench import synthetic
from driftloop.bench.cleanup import clean_up
from driftloop.bench.monitor import cpu_seconds, start_monitor_worker, write_profiles
from driftloop.process import ManagedProcess, free_port, spawn
from shared.sdk import Driftloop, ProducerConfig
from shared.settings import Settings

TOKEN = "bench-writer-token"


def feature_schema(spec: synthetic.StreamSpec) -> dict[str, Any]:
    """The registry's feature schema of a synthetic stream: its numeric and categorical features.

    >>> [f["name"] for f in feature_schema(synthetic.StreamSpec("m", 2, 1))["features"]]
    ['num_0', 'num_1', 'cat_0']
    """
    numeric = [{"name": f"num_{i}", "type": "numeric", "nullable": False} for i in range(spec.numeric)]
    categorical = [
        {"name": f"cat_{i}", "type": "categorical", "categories": synthetic.CATEGORIES, "nullable": False}
        for i in range(spec.categorical)
    ]
    return {"features": numeric + categorical}


def _wait(check: Any, timeout: float, what: str, poll: float = 0.2) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if check():
                return time.monotonic()
        except Exception:  # a server still starting
            pass
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def main(events: int = 300_000, features: int = 20, models: int = 4) -> dict[str, Any]:
    import httpx

    from driftloop.infra.stack import Component, local_stack
    from shared.clickhouse import clickhouse_client
    from shared.kafka.admin import create_topics
    from shared.topics import topic_names

    base = Settings()
    tag = uuid.uuid4().hex[:8]
    specs = [
        synthetic.StreamSpec(f"e2e-{i}", features - features // 5, features // 5, seed=i)
        for i in range(models)
    ]
    per_model = events // models
    print(f"preparing {per_model * models:,} predictions of {models} models with {features} features ...")
    start = datetime.now(UTC) - timedelta(minutes=5)
    calls = [
        {
            "model_name": e.model_name,
            "model_version": e.model_version,
            "features": e.features,
            "prediction": e.prediction,
            "probabilities": e.probabilities,
            "latency_ms": e.latency_ms,
            "occurred_at": e.occurred_at,
        }
        for spec in specs
        for e in synthetic.predictions(spec, per_model, start, timedelta(minutes=4) / per_model)
    ]
    calls = [calls[i * per_model + j] for j in range(per_model) for i in range(models)]  # models interleaved
    total = len(calls)
    figures: dict[str, Any] = {"events": total, "features": features, "models": models}
    with (
        local_stack(base, components=[Component.KAFKA, Component.CLICKHOUSE]) as stack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        registry_port, ingest_port = free_port(), free_port()
        settings = base.model_copy(
            update={
                "topic_prefix": f"bench-{tag}-",
                "clickhouse_database": f"bench_{tag}",
                "data_dir": Path(tmp),
                "artifact_root": "",
                "registry_database_url": "",
                "registry_url": f"http://127.0.0.1:{registry_port}",
                # model_copy does not validate: the secrets go in as the types the settings hold
                "registry_tokens": Secret({TOKEN: "bench:writer"}),
                "registry_token": SecretStr(TOKEN),
                "ingest_port": ingest_port,  # the validator's metrics listen on the port after it
                "monitor_window_seconds": 60,
                "log_level": "WARNING",
            }
        )
        topics = topic_names(settings.topic_prefix)
        create_topics(
            settings.kafka_bootstrap,
            topics.all(),
            settings.kafka_partitions,
            settings.kafka_replication_factor,
        )
        profiles = write_profiles(Path(tmp), {s.model_name: synthetic.reference_profile(s) for s in specs})
        processes: list[ManagedProcess] = []
        try:
            env = settings.as_env()
            processes.append(
                spawn(
                    "registry",
                    [sys.executable, "-m", "services.registry"],
                    Path(tmp) / "registry.log",
                    env=env,
                )
            )
            _wait(
                lambda: httpx.get(f"{settings.registry_url}/healthz").status_code == 200, 120, "the registry"
            )
            for spec in specs:
                httpx.post(
                    f"{settings.registry_url}/models",
                    json={"name": spec.model_name, "feature_schema": feature_schema(spec)},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=10,
                ).raise_for_status()
            validator = spawn(
                "validator",
                [sys.executable, "-m", "services.ingest", "--validator-only"],
                Path(tmp) / "validator.log",
                env=env,
            )
            processes.append(validator)
            worker, web_port = start_monitor_worker(settings, profiles, Path(tmp))
            processes.append(worker)
            _wait(
                lambda: httpx.get(f"http://127.0.0.1:{web_port}/health").status_code == 200,
                120,
                "the monitor",
            )
            client = clickhouse_client(settings)

            def stored() -> int:
                try:
                    return int(client.command("SELECT count() FROM predictions"))
                except Exception:  # the table is created with the first batch
                    return 0

            config = ProducerConfig.from_settings(settings, app_name="bench-e2e")
            pids = {"validator": validator.pid, "monitor": worker.pid}
            for component in (
                Component.KAFKA,
                Component.CLICKHOUSE,
            ):  # servers run elsewhere are not measured
                record = stack.state.live(component)
                if record is not None:
                    pids[component.value] = record.pid
            print(f"the app logs {total:,} predictions through the SDK as fast as it can ...", flush=True)
            with Driftloop(config) as dl:
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                app_cpu_before = time.process_time()
                began = time.monotonic()
                for i in range(0, total, 10_000):
                    dl.log_predictions(calls[i : i + 10_000])
                logged = time.monotonic()
                if not dl.flush(timeout=600):
                    raise RuntimeError("the SDK did not deliver within 600 s")
                acked = time.monotonic()
                app_cpu = time.process_time() - app_cpu_before
                spilled = dl.stats().spilled
            done = _wait(lambda: stored() >= total, 900, "every event stored", poll=0.1)
            cpu = {name: (cpu_seconds(pid) - cpu_before[name]) * 1e6 / total for name, pid in pids.items()}
            once = int(client.command("SELECT count() FROM predictions FINAL"))
            if once != total:
                raise RuntimeError(f"stored {once:,} distinct events, expected {total:,}")
            figures |= {
                "end_to_end_events_per_s": round(total / (done - began)),
                "sdk_log_calls_per_s": round(total / (logged - began)),
                "sdk_acked_events_per_s": round(total / (acked - began)),
                "last_stored_after_last_ack_s": round(done - acked, 2),
                "sdk_spilled_to_disk": spilled,
                "cpu_us_per_event": {"app (SDK)": round(app_cpu * 1e6 / total, 1)}
                | {name: round(us, 1) for name, us in cpu.items()},
            }
            print(
                f"end to end: {figures['end_to_end_events_per_s']:,} events/s "
                f"(SDK acked at {figures['sdk_acked_events_per_s']:,}/s; the last row stored "
                f"{figures['last_stored_after_last_ack_s']} s after the last ack)"
            )
            print(
                "CPU per event: " + ", ".join(f"{k} {v} µs" for k, v in figures["cpu_us_per_event"].items())
            )
        finally:
            for process in reversed(processes):
                process.stop()
            clean_up(settings)
    print(json.dumps(figures))
    return figures
