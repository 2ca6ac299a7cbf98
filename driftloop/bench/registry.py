"""Benchmark: the registry over real HTTP: register, resolve alias, get version, search over many versions,
each also through the MLflow-compatible API (``mlflow_*``, docs/mlflow.md) on the same versions.

Starts ``python -m services.registry`` on a temporary SQLite database (relay off, so no broker is needed;
the outbox rows are still written in every registration's transaction), registers ``versions`` versions
concurrently (the register figures), then drives each read with several client processes, each sending
one request at a time on its keep-alive connection and checking every answer (status and content; a wrong
one counts as an error). Prints requests/s and p50/p99 per operation and ends with one JSON line.

Each read is measured beside its MLflow twin, in ``rounds`` rounds that alternate which goes first: the
two share the machine's conditions of that minute (other work on the cores moves every figure), so their
ratio is the comparison the MLflow paths are held to. An operation's requests/s is the median of its
rounds; its p50/p99 are over all its requests.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from driftloop.process import free_port

MODEL = "bench-churn"
MLFLOW_MODEL = "bench-mlflow"
MLFLOW = "/api/2.0/mlflow"


class _Connection:
    """One keep-alive HTTP/1.1 connection, a request at a time.

    The client's CPU is part of the measurement (client and server share the machine), so requests are
    written and responses cut out of the byte stream directly: a few microseconds where ``http.client``
    spends most of a request's time parsing headers. The registry always sends ``Content-Length``.
    """

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.sock.sendall(head.encode() + b"\r\n" + (body or b""))
        data = self.buffer
        while (end := data.find(b"\r\n\r\n")) < 0:
            data += self._receive()
        header = data[:end].lower()
        at = header.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"{method} {path}: no Content-Length in {header!r}")
        line_end = header.find(b"\r\n", at + 2)
        length = int(header[at + 17 : line_end if line_end >= 0 else None])
        start = end + 4
        while len(data) < start + length:
            data += self._receive()
        self.buffer = data[start + length :]
        return int(header[9:12]), data[start : start + length]

    def _receive(self) -> bytes:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the registry closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class Read:
    """A GET and what its answer must hold to count as correct (status 200 and these)."""

    path: str
    version: int | None = None  # the version the answer names
    items: int = 0  # a search: how many items the page holds, each ready and carrying ``tags``
    tags: tuple[tuple[str, str], ...] = ()
    mlflow: bool = False  # an MLflow API answer (``model_version``, ``model_versions``)


def _correct(read: Read, status: int, body: bytes) -> bool:
    if status != 200:
        return False
    answer = json.loads(body)
    if read.mlflow:
        return _correct_mlflow(read, answer)
    if read.version is not None:
        return bool(answer["version"] == read.version)
    items = answer["items"]
    return len(items) == read.items and all(
        item["status"] == "ready" and all(item["tags"].get(k) == v for k, v in read.tags) for item in items
    )


def _correct_mlflow(read: Read, answer: dict[str, object]) -> bool:
    if read.version is not None:
        found = answer["model_version"]
        return isinstance(found, dict) and found["version"] == str(read.version)
    items = answer["model_versions"]
    assert isinstance(items, list)
    return len(items) == read.items and all(
        item["status"] == "READY" and all({"key": k, "value": v} in item["tags"] for k, v in read.tags)
        for item in items
    )


def _worker(port: int, reads: list[Read], start_at: float) -> tuple[float, float, list[float], int]:
    """One client process: waits for the common start, sends its requests in turn, times and checks each
    (the check, like a real caller's parsing, costs client CPU in the measured loop but not latency)."""
    conn = _Connection(port)
    conn.request("GET", "/healthz")  # connect before the clock starts
    while time.time() < start_at:
        time.sleep(0.001)
    latencies, errors = [], 0
    began = time.perf_counter()
    wall_start = time.time()
    for read in reads:
        t0 = time.perf_counter()
        status, body = conn.request("GET", read.path)
        latencies.append((time.perf_counter() - t0) * 1000)
        errors += not _correct(read, status, body)
    wall_end = wall_start + (time.perf_counter() - began)
    conn.close()
    return wall_start, wall_end, latencies, errors


def _drive(
    port: int, reads: list[Read], clients: int, pool: ProcessPoolExecutor
) -> tuple[dict[str, float], np.ndarray]:
    """Requests/s and latency percentiles of ``reads`` split over ``clients`` processes, and every request's
    latency (ms)."""
    shares = [reads[i::clients] for i in range(clients)]
    start_at = time.time() + 0.5
    results = list(pool.map(_worker, [port] * clients, shares, [start_at] * clients))
    latencies = np.concatenate([r[2] for r in results])
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    figures = {
        "rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "errors": float(sum(r[3] for r in results)),
    }
    return figures, latencies


def _drive_pair(
    port: int, pair: tuple[list[list[Read]], list[list[Read]]], clients: int, pool: ProcessPoolExecutor
) -> tuple[dict[str, float], dict[str, float]]:
    """A read and its MLflow twin, round by round (each round's requests given), alternating which goes
    first; each one's median requests/s over the rounds and p50/p99 over all its requests."""
    rounds: tuple[list[dict[str, float]], list[dict[str, float]]] = ([], [])
    latencies: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for i in range(len(pair[0])):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            figures, times = _drive(port, pair[side][i], clients, pool)
            rounds[side].append(figures)
            latencies[side].append(times)
    out = []
    for side in (0, 1):
        every = np.concatenate(latencies[side])
        out.append(
            {
                "rps": float(np.median([r["rps"] for r in rounds[side]])),
                "p50_ms": float(np.percentile(every, 50)),
                "p99_ms": float(np.percentile(every, 99)),
                "errors": float(sum(r["errors"] for r in rounds[side])),
            }
            | {f"round_{i + 1}_rps": r["rps"] for i, r in enumerate(rounds[side])}
        )
    return out[0], out[1]


def _tags(i: int) -> dict[str, str]:
    """Version ``i``'s tags (0-based): ten teams; odd versions are prod, so even teams have none."""
    return {"team": f"t{i % 10}", "env": "prod" if i % 2 else "dev"}


def _register_all(
    port: int, n: int, artifact_uri: str, threads: int, mlflow: bool = False
) -> dict[str, float]:
    """``n`` registrations by URI from ``threads`` concurrent clients (each hashes the artifact); with
    ``mlflow``, MLflow's ``model-versions/create`` of ``bench-mlflow`` with the same artifact as source."""

    def one(i: int, conn: _Connection) -> float:
        if mlflow:
            path, expected = f"{MLFLOW}/model-versions/create", 200
            tags = [{"key": "kind", "value": "mlflow"}]
            body: dict[str, object] = {"name": MLFLOW_MODEL, "source": artifact_uri, "tags": tags}
        else:
            path, expected = f"/models/{MODEL}/versions", 201
            body = {
                "artifact_uri": artifact_uri,
                "metrics": {"auc": 0.7 + (i % 100) / 1000},
                "tags": _tags(i),
            }
        t0 = time.perf_counter()
        status, answer = conn.request("POST", path, json.dumps(body).encode())
        if status != expected:
            raise RuntimeError(f"registration {i} got HTTP {status}: {answer[:500]!r}")
        return (time.perf_counter() - t0) * 1000

    def share(k: int) -> list[float]:
        conn = _Connection(port, timeout=60)
        try:
            return [one(i, conn) for i in range(k, n, threads)]
        finally:
            conn.close()

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
            conn = _Connection(port, timeout=1)
            try:
                if conn.request("GET", "/healthz")[0] == 200:
                    return process
            finally:
                conn.close()
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the registry did not start within 60 s")


def _workloads(versions: int) -> dict[str, Callable[[random.Random], Read]]:
    """Each read benchmark's requests, with the answer each must get (``production`` is version 1)."""

    prod = Counter(tags["team"] for tags in map(_tags, range(versions)) if tags["env"] == "prod")

    def search(rng: random.Random) -> Read:
        team = f"t{rng.randint(0, 9)}"
        return Read(
            f"/versions?name_prefix=bench&status=ready&tag=team%3D{team}&tag=env%3Dprod&limit=100",
            items=min(100, prod[team]),
            tags=(("team", team), ("env", "prod")),
        )

    def search_uncached(rng: random.Random) -> Read:
        """The same search with a cache-busting parameter (ignored by the route): every one is a first."""
        read = search(rng)
        return Read(f"{read.path}&_={rng.getrandbits(64)}", items=read.items, tags=read.tags)

    def get_version(rng: random.Random) -> Read:
        version = rng.randint(1, versions)
        return Read(f"/models/{MODEL}/versions/{version}", version=version)

    def mlflow_search(rng: random.Random) -> Read:
        team = f"t{rng.randint(0, 9)}"
        query = f"name LIKE 'bench%' AND tags.team = '{team}' AND tags.env = 'prod'"
        return Read(
            f"{MLFLOW}/model-versions/search?filter={quote(query)}&max_results=100",
            items=min(100, prod[team]),
            tags=(("team", team), ("env", "prod")),
            mlflow=True,
        )

    def mlflow_search_uncached(rng: random.Random) -> Read:
        """MLflow's search with a cache-busting parameter (ignored by the route): every one is a first."""
        read = mlflow_search(rng)
        return Read(f"{read.path}&_={rng.getrandbits(64)}", items=read.items, tags=read.tags, mlflow=True)

    def mlflow_get_version(rng: random.Random) -> Read:
        version = rng.randint(1, versions)
        return Read(
            f"{MLFLOW}/model-versions/get?name={MODEL}&version={version}", version=version, mlflow=True
        )

    return {
        "resolve": lambda _rng: Read(f"/models/{MODEL}/aliases/production", version=1),
        "get_version": get_version,
        "search": search,
        "search_uncached": search_uncached,
        "mlflow_resolve": lambda _rng: Read(
            f"{MLFLOW}/registered-models/alias?name={MODEL}&alias=production", version=1, mlflow=True
        ),
        "mlflow_get_version": mlflow_get_version,
        "mlflow_search": mlflow_search,
        "mlflow_search_uncached": mlflow_search_uncached,
    }


def main(
    versions: int = 10_000,
    requests: int = 5_000,
    clients: int = 2,
    workers: int = 1,
    mlflow_versions: int = 2_000,
    rounds: int = 3,
) -> dict[str, float]:
    port = free_port("127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-registry-") as tmp:
        # under the registry's artifact root: a URI outside it is refused (docs/security.md)
        artifact = Path(tmp) / "data" / "artifacts" / "bench" / "model.joblib"
        artifact.parent.mkdir(parents=True)
        artifact.write_bytes(os.urandom(64 * 1024))
        process = _start_registry(port, Path(tmp) / "data", workers)
        try:
            conn = _Connection(port)
            for model in (MODEL, MLFLOW_MODEL):
                conn.request("POST", "/models", json.dumps({"name": model}).encode())
            conn.close()
            print(f"registering {versions} versions (8 concurrent clients) ...", flush=True)
            figures: dict[str, dict[str, float]] = {
                "register": _register_all(port, versions, artifact.as_uri(), threads=8)
            }
            conn = _Connection(port)
            status, answer = conn.request("PUT", f"/models/{MODEL}/aliases/production", b'{"version": 1}')
            conn.close()
            if status != 200:
                raise RuntimeError(f"setting the alias got HTTP {status}: {answer[:500]!r}")
            rng = random.Random(7)
            workloads = _workloads(versions)
            with ProcessPoolExecutor(clients) as pool:
                for name in ("resolve", "get_version", "search", "search_uncached"):
                    twin = f"mlflow_{name}"
                    count = requests if "search" not in name else max(500, requests // 5)
                    native, mlflow = (
                        [[workloads[n](rng) for _ in range(count)] for _ in range(rounds)]
                        for n in (name, twin)
                    )
                    figures[name], figures[twin] = _drive_pair(port, (native, mlflow), clients, pool)
            if mlflow_versions:  # last: its versions (another model, no team tags) stay out of the reads
                print(f"registering {mlflow_versions} versions through the MLflow API ...", flush=True)
                figures["mlflow_register"] = _register_all(
                    port, mlflow_versions, artifact.as_uri(), threads=8, mlflow=True
                )
        finally:
            process.terminate()
            process.wait(timeout=30)

    for name, f in figures.items():
        each = [f"{v:.0f}" for k, v in f.items() if k.startswith("round_")]
        print(
            f"{name:22s} {f['rps']:8.0f} req/s   p50 {f['p50_ms']:7.2f} ms   p99 {f['p99_ms']:7.2f} ms"
            f"   errors {int(f['errors'])}" + (f"   rounds {' '.join(each)}" if each else "")
        )
    summary = {"versions": float(versions), "clients": float(clients), "workers": float(workers)}
    summary["rounds"] = float(rounds)
    for name, f in figures.items():
        summary |= {f"{name}_rps": round(f["rps"], 1), f"{name}_p50_ms": round(f["p50_ms"], 2)}
        summary |= {f"{name}_p99_ms": round(f["p99_ms"], 2), f"{name}_errors": f["errors"]}
    for name in ("register", "resolve", "get_version", "search", "search_uncached"):
        if f"mlflow_{name}" in figures:  # MLflow's requests/s over native's, measured side by side
            summary[f"mlflow_{name}_vs_native"] = round(
                figures[f"mlflow_{name}"]["rps"] / figures[name]["rps"], 3
            )
    print(json.dumps(summary))
    return summary
