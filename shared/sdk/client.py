"""The SDK's public producers: :class:`Driftloop` for ordinary code, :class:`AsyncDriftloop` for asyncio apps.

Both hand events to the same machinery: the caller encodes and appends to an in-memory buffer (a few
microseconds, never the network); a background thread with its own event loop ships the buffer to Kafka
and spills it to disk when the broker does not answer.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from shared.sdk.buffer import BufferStats, EventBuffer
from shared.sdk.config import ProducerConfig
from shared.sdk.encoding import label_record, prediction_record
from shared.sdk.shipper import Shipper, check_compression
from shared.sdk.spool import Record, open_free_spool
from shared.sdk.timing import Timed, timed_decorator

log = logging.getLogger("shared.sdk")

# An event must fit in one Kafka batch with room for the batch header.
_BATCH_OVERHEAD = 1024


class Driftloop:
    """Publishes prediction and label events to Kafka without ever blocking the app on the network.

    Examples
    --------
    >>> from shared.sdk import Driftloop, ProducerConfig
    >>> with Driftloop(ProducerConfig(bootstrap="127.0.0.1:9092")) as dl:  # doctest: +SKIP
    ...     pid = dl.log_prediction("churn", "7", {"age": 41, "plan": "pro"}, prediction=1)
    ...     dl.log_label("churn", pid, label=0)
    """

    def __init__(self, config: ProducerConfig | None = None) -> None:
        self.config = config or ProducerConfig()
        check_compression(self.config.compression)
        spool = open_free_spool(
            self.config.spool_dir,
            max_bytes=self.config.max_disk_bytes,
            segment_bytes=self.config.segment_bytes,
        )
        self._buffer = EventBuffer(spool, max_memory_events=self.config.max_memory_events)
        self._shipper = Shipper(self.config, self._buffer)
        self._max_event_bytes = self.config.max_batch_bytes - _BATCH_OVERHEAD
        self._closed = False
        self._close_lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"driftloop-sdk-{self.config.client_id}", daemon=True
        )
        self._thread.start()
        self._task: asyncio.Task[None] = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        # an app that forgets close() still keeps its buffered events (on disk) at interpreter exit
        self._atexit = _atexit_closer(weakref.ref(self))
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ logging

    def log_prediction(
        self,
        model_name: str,
        model_version: str,
        features: Mapping[str, Any],
        prediction: Any,
        *,
        prediction_id: str | None = None,
        probabilities: Mapping[Any, float] | None = None,
        latency_ms: float | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> str:
        """Queue one prediction; returns its ``prediction_id`` (generated if not given) for the label."""
        record, pid = prediction_record(
            model_name,
            model_version,
            features,
            prediction,
            prediction_id=prediction_id,
            probabilities=probabilities,
            latency_ms=latency_ms,
            occurred_at=occurred_at,
            event_id=event_id,
        )
        self._append(record)
        return pid

    def log_predictions(self, predictions: Iterable[Mapping[str, Any]]) -> list[str]:
        """Queue many predictions, each a mapping of :meth:`log_prediction`'s arguments."""
        records: list[Record] = []
        ids: list[str] = []
        for fields in predictions:
            record, pid = prediction_record(**fields)
            self._check_size(record)
            records.append(record)
            ids.append(pid)
        self._extend(records)
        return ids

    def log_label(
        self,
        model_name: str,
        prediction_id: str,
        label: Any,
        *,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> None:
        """Queue the ground truth for an earlier prediction."""
        self._append(
            label_record(model_name, prediction_id, label, occurred_at=occurred_at, event_id=event_id)
        )

    def log_labels(self, labels: Iterable[Mapping[str, Any]]) -> None:
        """Queue many labels, each a mapping of :meth:`log_label`'s arguments."""
        records = [label_record(**fields) for fields in labels]
        for record in records:
            self._check_size(record)
        self._extend(records)

    def timed(
        self,
        model_name: str,
        model_version: str,
        *,
        features: Any = None,
        output: Any = None,
    ) -> Timed:
        """Decorator: time each call of a model function and log it as a prediction (see ``shared.sdk.timing``)."""
        return timed_decorator(self, model_name, model_version, features=features, output=output)

    def _check_size(self, record: Record) -> None:
        if len(record.value) > self._max_event_bytes:
            raise ValueError(
                f"event of {len(record.value)} bytes is larger than the {self._max_event_bytes} bytes one "
                "Kafka batch can carry; log fewer or shorter features"
            )

    def _append(self, record: Record) -> None:
        self._check_size(record)
        if self._closed:
            raise RuntimeError("this Driftloop producer is closed; create a new one")
        self._buffer.append(record)

    def _extend(self, records: list[Record]) -> None:
        if self._closed:
            raise RuntimeError("this Driftloop producer is closed; create a new one")
        self._buffer.extend(records)

    # ------------------------------------------------------------------ lifecycle

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event logged so far reached Kafka (or was dropped); False on timeout."""
        target = self._buffer.logged
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            if self._buffer.wait_resolved(target, step):
                return True
            self._raise_if_crashed()
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _raise_if_crashed(self) -> None:
        """A bug or a bad configuration stopped the background shipper: say so instead of waiting forever."""
        if self._task.done() and not self._task.cancelled() and self._task.exception() is not None:
            raise RuntimeError("the Driftloop SDK's background producer failed") from self._task.exception()

    def stats(self) -> BufferStats:
        """Counters for the app's metrics: logged, delivered, dropped (disk full), spilled, buffered."""
        return self._buffer.stats()

    @property
    def connected(self) -> bool:
        """True while Kafka acknowledges: a producer is up and nothing waited longer than ``spill_after_s``."""
        return self._shipper.connected and not self._shipper.failed_attempts and not self._shipper.stalled

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is buffered within ``timeout``; whatever is left waits on disk for the next start."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._atexit)
        delivered = self.flush(timeout)
        grace = max(timeout, 1.0) if delivered else 0.5
        asyncio.run_coroutine_threadsafe(self._finish(grace), self._loop).result(timeout=grace + 30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        stats = self._buffer.stats()
        self._buffer.spool.close()
        if stats.on_disk:
            log.warning(
                "Driftloop SDK closed with %d events kept in %s; they are sent when a producer starts there again",
                stats.on_disk,
                self.config.spool_dir,
            )

    async def _start(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._shipper.run())

    async def _finish(self, grace: float) -> None:
        """Let the shipper drain for ``grace`` seconds, then stop it and keep the rest on disk."""
        self._shipper.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._shipper.shutdown()

    def __enter__(self) -> Driftloop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncDriftloop:
    """The asyncio flavour: logging is a plain (non-blocking) call; ``flush`` and ``aclose`` are awaitable."""

    def __init__(self, config: ProducerConfig | None = None) -> None:
        self._sync = Driftloop(config)
        self.config = self._sync.config
        self.log_prediction = self._sync.log_prediction
        self.log_predictions = self._sync.log_predictions
        self.log_label = self._sync.log_label
        self.log_labels = self._sync.log_labels
        self.timed = self._sync.timed
        self.stats = self._sync.stats

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait, without blocking the event loop, until every event logged so far reached Kafka."""
        return await asyncio.to_thread(self._sync.flush, timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self._sync.close, timeout)

    async def __aenter__(self) -> AsyncDriftloop:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _atexit_closer(ref: weakref.ref[Driftloop]) -> Any:
    def close() -> None:
        producer = ref()
        if producer is not None:
            producer.close(timeout=5.0)

    return close
