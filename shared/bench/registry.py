"""Benchmark: the registry over real HTTP: register, resolve alias, get version, search over many versions.

Starts ``python -m services.registry`` on a temporary SQLite database (relay off, so no broker is needed;
the outbox rows are still written in every registration's transaction), registers ``versions`` versions
concurrently (the register figures), then drives each read with several client processes over keep-alive
connections. Prints requests/s and p50/p99 per operation and ends with one JSON line.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from shared.infra.process import free_port

MODEL = "bench-churn"
Request = tuple[str, str, bytes | None]


def _call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None) -> int:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _worker(port: int, requests: list[Request], start_at: float) -> tuple[float, float, list[float], int]:
    """One client process: waits for the common start, sends its requests in turn, times each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    _call(conn, "GET", "/healthz", None)  # connect before the clock starts
    while time.time() < start_at:
        time.sleep(0.001)
    latencies, errors = [], 0
    began = time.perf_counter()
    wall_start = time.time()
    for method, path, body in requests:
        t0 = time.perf_counter()
        if _call(conn, method, path, body) >= 400:
            errors += 1
        latencies.append((time.perf_counter() - t0) * 1000)
    return wall_start, wall_start + (time.perf_counter() - began), latencies, errors


def _drive(port: int, requests: list[Request], clients: int, pool: ProcessPoolExecutor) -> dict[str, float]:
    """Requests/s and latency percentiles of ``requests`` split over ``clients`` processes."""
    shares = [requests[i::clients] for i in range(clients)]
    start_at = time.time() + 0.5
    results = list(pool.map(_worker, [port] * clients, shares, [start_at] * clients))
    latencies = np.concatenate([r[2] for r in results])
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    return {
        "rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "errors": float(sum(r[3] for r in results)),
    }


def _register_all(port: int, n: int, artifact_uri: str, threads: int) -> dict[str, float]:
    """``n`` registrations by URI from ``threads`` concurrent clients (each hashes the artifact)."""

    def one(i: int, conn: http.client.HTTPConnection) -> float:
        body = {
            "artifact_uri": artifact_uri,
            "metrics": {"auc": 0.7 + (i % 100) / 1000},
            "tags": {"team": f"t{i % 10}", "env": "prod" if i % 2 else "dev"},
        }
        t0 = time.perf_counter()
        status = _call(conn, "POST", f"/models/{MODEL}/versions", json.dumps(body).encode())
        if status != 201:
            raise RuntimeError(f"registration {i} got HTTP {status}")
        return (time.perf_counter() - t0) * 1000

    def share(k: int) -> list[float]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        return [one(i, conn) for i in range(k, n, threads)]

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        latencies = np.concatenate(list(pool.map(share, range(threads))))
    wall = time.perf_counter() - began
    return {
        "rps": n / wall,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "errors": 0.0,
    }


def _start_registry(port: int, data_dir: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DRIFTLOOP_DATA_DIR": str(data_dir),
        "DRIFTLOOP_REGISTRY_URL": f"http://127.0.0.1:{port}",
        "DRIFTLOOP_REGISTRY_DATABASE_URL": "",
        "DRIFTLOOP_ARTIFACT_ROOT": "",
        "DRIFTLOOP_REGISTRY_ALLOW_ANONYMOUS_WRITES": "true",
        "DRIFTLOOP_REGISTRY_RELAY_ENABLED": "false",
        "DRIFTLOOP_LOG_LEVEL": "WARNING",
        "DRIFTLOOP_REGISTRY_WORKERS": str(workers),
    }
    process = subprocess.Popen([sys.executable, "-m", "services.registry"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if (
                _call(http.client.HTTPConnection("127.0.0.1", port, timeout=1), "GET", "/healthz", None)
                == 200
            ):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the registry did not start within 60 s")


def main(
    versions: int = 10_000, requests: int = 5_000, clients: int = 2, workers: int = 1
) -> dict[str, float]:
    port = free_port("127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-registry-") as tmp:
        artifact = Path(tmp) / "model.joblib"
        artifact.write_bytes(os.urandom(64 * 1024))
        process = _start_registry(port, Path(tmp) / "data", workers)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            _call(conn, "POST", "/models", json.dumps({"name": MODEL}).encode())
            print(f"registering {versions} versions (8 concurrent clients) ...", flush=True)
            figures: dict[str, dict[str, float]] = {
                "register": _register_all(port, versions, artifact.as_uri(), threads=8)
            }
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)  # the old one idled out
            _call(conn, "PUT", f"/models/{MODEL}/aliases/production", b'{"version": 1}')
            rng = random.Random(7)
            workloads: dict[str, Callable[[], Request]] = {
                "resolve": lambda: ("GET", f"/models/{MODEL}/aliases/production", None),
                "get_version": lambda: (
                    "GET",
                    f"/models/{MODEL}/versions/{rng.randint(1, versions)}",
                    None,
                ),
                "search": lambda: (
                    "GET",
                    f"/versions?name_prefix=bench&status=ready&tag=team%3Dt{rng.randint(0, 9)}"
                    f"&tag=env%3Dprod&limit=100",
                    None,
                ),
            }
            with ProcessPoolExecutor(clients) as pool:
                for name, make in workloads.items():
                    count = requests if name != "search" else max(500, requests // 5)
                    figures[name] = _drive(port, [make() for _ in range(count)], clients, pool)
        finally:
            process.terminate()
            process.wait(timeout=30)

    for name, f in figures.items():
        print(
            f"{name:12s} {f['rps']:8.0f} req/s   p50 {f['p50_ms']:7.2f} ms   p99 {f['p99_ms']:7.2f} ms"
            f"   errors {int(f['errors'])}"
        )
    summary = {"versions": float(versions), "clients": float(clients), "workers": float(workers)}
    for name, f in figures.items():
        summary |= {f"{name}_rps": round(f["rps"], 1), f"{name}_p50_ms": round(f["p50_ms"], 2)}
        summary |= {f"{name}_p99_ms": round(f["p99_ms"], 2), f"{name}_errors": f["errors"]}
    print(json.dumps(summary))
    return summary
