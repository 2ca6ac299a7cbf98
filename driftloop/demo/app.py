"""The simulated production app: asks the model server for each row at a steady rate, reports the truth later.

It is what a real client of Driftloop does and nothing more: one ``POST /predict`` per row with its own
``prediction_id``, and, once the truth is known (``label_delay_s`` later, with some jitter), one label through
the producer SDK. It never talks to the monitor, trainer or registry: what it sees of the loop is which
version answered.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from driftloop.demo.dataset import DriftingDataset, StreamPlan

MAX_LAG_S = 1.0  # behind schedule by more than this (a stalled server): go on at the rate, do not burst


class LabelSink(Protocol):
    """Where the truth goes: the producer SDK (``shared.sdk.Driftloop``) in the demo."""

    def log_label(self, model_name: str, prediction_id: str, label: Any) -> None: ...


@dataclass(frozen=True)
class Served:
    """One answered request: the row, who answered it, what it said and what the truth was."""

    row: int
    prediction_id: str
    at: float  # wall-clock seconds (time.time()) when the answer arrived
    version: int
    prediction: str
    truth: str
    latency_ms: float

    @property
    def correct(self) -> bool:
        return self.prediction == self.truth


@dataclass(frozen=True)
class Refused:
    """A request the model server did not answer with a prediction."""

    row: int
    at: float
    status: int | None
    detail: str


class ProductionApp:
    """Replays ``plan.stream`` against the model server at ``plan.rate`` requests per second."""

    def __init__(
        self,
        data: DriftingDataset,
        plan: StreamPlan,
        serving: httpx.Client,
        labels: LabelSink,
        model_name: str,
        *,
        on_served: Callable[[Served], None] = lambda s: None,
        on_refused: Callable[[Refused], None] = lambda r: None,
        seed: int = 7,
        run_tag: str = "demo",
        concurrency: int = 4,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.data = data
        self.plan = plan
        self.serving = serving
        self.labels = labels
        self.model_name = model_name
        self.on_served = on_served
        self.on_refused = on_refused
        self.run_tag = run_tag
        self._rng = random.Random(seed)
        self._clock = clock
        self._sleep = sleep
        self.concurrency = concurrency
        self._pending: list[tuple[float, int, str, str]] = []  # (due, row, prediction_id, truth)
        self._lock = threading.Lock()  # answers arrive on worker threads; labels leave from the caller's
        self.served: list[Served] = []
        self.refused: list[Refused] = []
        self.labels_sent = 0

    def run(self, stop: threading.Event | None = None) -> list[Served]:
        """Send the rows of the stream in order (until ``stop`` is set), then the labels still due; returns
        what was served. Every answered request gets its label, also when the stream was stopped early.

        Up to ``concurrency`` requests are in flight, as from a real app's several workers, so a slow
        answer (a busy machine) does not slow the rate down; with 1 each request waits for the previous.
        """
        slots = threading.BoundedSemaphore(self.concurrency)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="demo-app") as pool:
            start = self._clock()
            for i, row in enumerate(self.plan.stream):
                if stop is not None and stop.is_set():
                    break
                due = start + i / self.plan.rate
                self._wait_until(due)
                if self.concurrency == 1:
                    self._request(row)
                else:
                    while not slots.acquire(timeout=0.05):  # all workers busy: keep the labels flowing
                        self._wait_until(self._clock())
                    pool.submit(self._request_in_slot, row, slots)
                lag = self._clock() - due
                if lag > MAX_LAG_S:
                    start += lag
        while self._pending:
            self._wait_until(self._pending[0][0])
        return self.served

    def _request_in_slot(self, row: int, slots: threading.BoundedSemaphore) -> None:
        try:
            self._request(row)
        finally:
            slots.release()

    def _wait_until(self, moment: float) -> None:
        """Send the labels that fall due before ``moment``, sleeping in between."""
        while True:
            now = self._clock()
            while True:
                with self._lock:
                    if not self._pending or self._pending[0][0] > now:
                        break
                    _, _, prediction_id, truth = heapq.heappop(self._pending)
                self.labels.log_label(self.model_name, prediction_id, truth)
                self.labels_sent += 1
            if now >= moment:
                return
            with self._lock:
                wake = min(moment, self._pending[0][0]) if self._pending else moment
            self._sleep(max(0.0, wake - now))

    def _request(self, row: int) -> None:
        prediction_id = f"{self.run_tag}-{row}"
        body = {"features": self.data.features_of(row), "prediction_id": prediction_id}
        try:
            response = self.serving.post("/predict", json=body)
        except httpx.HTTPError as exc:
            self._refuse(Refused(row, time.time(), None, f"{type(exc).__name__}: {exc}"))
            return
        if response.status_code != 200:
            self._refuse(Refused(row, time.time(), response.status_code, response.text[:300]))
            return
        answer = response.json()
        served = Served(
            row=row,
            prediction_id=prediction_id,
            at=time.time(),
            version=int(answer["model_version"]),
            prediction=str(answer["prediction"]),
            truth=self.data.label_of(row),
            latency_ms=float(answer.get("latency_ms") or 0.0),
        )
        with self._lock:
            self.served.append(served)
            delay = self.plan.label_delay_s * self._rng.uniform(0.5, 1.5)
            heapq.heappush(self._pending, (self._clock() + delay, row, prediction_id, served.truth))
            self.on_served(served)

    def _refuse(self, refused: Refused) -> None:
        with self._lock:
            self.refused.append(refused)
            self.on_refused(refused)
