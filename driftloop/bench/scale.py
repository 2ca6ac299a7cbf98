"""Benchmark: does the scaling advisor see a monitor overload coming, and is its advice right?

Over the real local stack (Kafka, embedded ClickHouse, monitor worker processes, the advisor in-process):

0. a burst of events, sent while the worker is paused (as in a restart), measures one worker's drain rate
   (``events_per_s_1w``); the advisor, running from the start as it does in production, sees the backlog
   drained too and remembers that rate as a ceiling;
0b. the feeder then offers that rate to the worker streaming: what it commits while its lag grows is its
   streaming rate (``events_per_s_1w_streaming``, lower: a backlog drains in large batches), which the
   phases below are shares of;
1. a steady stream at 40% of it for ``steady_s``: every piece of advice here is false (``false_advice``);
2. a ramp from 40% to 180% of it: ``advice_lead_s`` is the time between the first advice to add workers
   and the moment the lag actually broke the SLO (lag / drain rate > ``advisor_slo_seconds``);
3. at the ramp's final rate, 2 workers and then the advised number are started, and the smallest that
   holds the SLO is ``held_workers`` (``events_per_s_2w``: what 2 workers drained while catching up).

At the end, with the workers stopped, the broker's own ceiling is measured with Kafka's perf tools on the
same events (``measure_broker_ceiling`` in driftloop/bench/kafka_ceiling.py), and ``monitor_share_of_ceiling``
is one worker's drain rate over the broker's consume rate, as ``driftloop bench monitor --workers N`` reports it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driftloop.bench import synthetic
from driftloop.bench.cleanup import clean_up
from driftloop.bench.kafka_ceiling import BrokerCeiling, measure_broker_ceiling
from driftloop.bench.monitor import start_monitor_worker, write_profiles
from services.advisor.domain.advice import SATURATED_BACKLOG_S
from shared import wire
from shared.kafka.clients import producer as kafka_producer
from shared.sdk.batches import KeyPartitioner, send_keyed
from shared.settings import Settings

PARTITIONS = 6
TICK_S = 0.1


class Feeder(threading.Thread):
    """Sends prediction events at ``rate`` per second (plus any ``burst``), from pre-encoded templates."""

    def __init__(self, settings: Settings, topic: str, templates: list[tuple[bytes, bytes, bytes]]) -> None:
        super().__init__(daemon=True)
        self.settings, self.topic, self.templates = settings, topic, templates
        self.rate = 0.0
        self.burst = 0
        self.sent = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self._prefix = uuid.uuid4().hex[:8]

    def run(self) -> None:
        try:
            asyncio.run(self._feed())
        except BaseException as exc:  # reported by the caller, which owns the run
            self.error = exc

    async def _feed(self) -> None:
        producer = kafka_producer(
            self.settings, acks=1, enable_idempotence=False, linger_ms=20, max_batch_size=1 << 20
        )
        await producer.start()
        owed, last, n = 0.0, time.monotonic(), len(self.templates)
        partitioner = KeyPartitioner()  # batches per partition, each key hashed once (as the SDK sends)
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                owed += self.rate * (now - last)
                last = now
                take = int(owed) + self.burst
                owed -= int(owed)
                send = min(take, 50_000)
                self.burst = take - send  # a burst goes on over the next ticks, 50k events at a time
                records = []
                for _ in range(send):
                    key, template, old_id = self.templates[self.sent % n]
                    fresh = f"{self._prefix}-0000-4000-8000-{self.sent:012x}".encode()
                    records.append((self.topic, key, template.replace(old_id, fresh)))
                    self.sent += 1
                if records:
                    failed, error = await send_keyed(producer, records, partitioner)
                    if failed:
                        raise RuntimeError(f"the broker refused {len(failed):,} events: {error!r}")
                await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
        finally:
            await producer.stop()


class AdvisorRun(threading.Thread):
    """The advisor, built by its own bootstrap on the run's settings, ticking in its own event loop."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.stopping = threading.Event()
        self.given: list[tuple[float, Any]] = []
        self.monitor_urls: list[str] = []
        self.error: BaseException | None = None
        self.capacity: float | None = None
        self.busy_capacity: float | None = None
        self.drained_capacity: float | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:
            self.error = exc

    async def _run(self) -> None:
        from services.advisor.bootstrap import bootstrap
        from services.advisor.domain.advice import median_capacity

        advisor, loop, _ = bootstrap(self.settings)
        advisor.workers.urls = self.monitor_urls  # type: ignore[attr-defined]  # the bench adds workers
        await loop.open()
        try:
            while not self.stopping.is_set():
                began = time.monotonic()
                for event in await advisor.tick():
                    self.given.append((time.monotonic(), event))
                    print(f"  [{time.strftime('%H:%M:%S')}] advice: {event.message}", flush=True)
                self.capacity = advisor.signals.get("monitor", {}).get("capacity_per_worker")
                self.busy_capacity = median_capacity(advisor.capacities)  # from busy time, never capped
                self.drained_capacity = advisor.signals.get("monitor", {}).get("capacity_per_worker_drained")
                await asyncio.sleep(
                    max(0.0, self.settings.advisor_interval_seconds - (time.monotonic() - began))
                )
        finally:
            await loop.close()


def _lag(settings: Settings) -> tuple[float, int, int]:
    from aiokafka.errors import KafkaError

    from shared.kafka.admin import consumer_lag
    from shared.topics import monitor_group, topic_names

    for attempt in range(20):
        try:
            reading = consumer_lag(
                settings,
                monitor_group(settings.topic_prefix),
                [topic_names(settings.topic_prefix).predictions],
            )
            return time.monotonic(), reading.lag, reading.committed
        except KafkaError:  # a new group's coordinator is still loading
            if attempt == 19:
                raise
            time.sleep(0.5)
    raise AssertionError("unreachable")


def _wait(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.5) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def _drain_rate(settings: Settings, timeout: float) -> float:
    """Events/s the running workers commit while a backlog lasts (median of 1 s steps), then waits it out."""
    readings = [_lag(settings)]
    while readings[-1][1] > 0 and time.monotonic() - readings[0][0] < timeout:
        time.sleep(1.0)
        readings.append(_lag(settings))
    rates = [
        (c2 - c1) / (t2 - t1)
        for (t1, lag1, c1), (t2, _, c2) in itertools.pairwise(readings)
        if lag1 > 0 and c2 > c1
    ]
    return statistics.median(rates) if rates else 0.0


def _streaming_rate(settings: Settings, feeder: Feeder, offered: float, figures: dict[str, Any]) -> float:
    """Events/s one worker keeps up with while it streams: the feeder offers it ``offered`` for 25 s.

    A paused worker's backlog drains in large batches, faster than the worker follows a live stream (88k
    vs ~45k events/s on a quiet machine): steady at "40%" of the drain rate was 70-90% of the streaming
    one. What the worker commits while its lag grows is its streaming rate; if the lag does not grow, the
    feeder was the limit and the rate is a floor (``feeder_limited``). The backlog is drained before the
    steady phase.
    """
    print(
        f"phase 0b: the feeder offers {offered:,.0f} events/s for 25 s: what does the worker stream?",
        flush=True,
    )
    feeder.rate = offered
    time.sleep(5.0)
    t0, lag0, c0 = _lag(settings)
    sent0 = feeder.sent
    time.sleep(20.0)
    t1, lag1, c1 = _lag(settings)
    sent = (feeder.sent - sent0) / (t1 - t0)
    feeder.rate = 0.0
    streamed = (c1 - c0) / (t1 - t0)
    limited = lag1 - lag0 < SATURATED_BACKLOG_S * streamed
    figures["events_per_s_1w_streaming"] = round(streamed)
    figures["feeder_limited"] = limited
    print(
        f"  the worker streamed {streamed:,.0f} events/s of the {sent:,.0f} sent "
        f"({'the feeder was the limit' if limited else 'its lag grew by ' + format(lag1 - lag0, ',')})",
        flush=True,
    )
    _drain_rate(settings, 300)  # the backlog gone, the steady phase starts from an empty lag
    return streamed


def main(
    calibrate_events: int = 400_000,
    steady_s: float = 90.0,
    ramp_s: float = 240.0,
    hold_s: float = 45.0,
    models: int = 12,
    features: int = 10,
    ceiling_records: int = 200_000,
) -> dict[str, Any]:
    from driftloop.infra.stack import Component, local_stack
    from shared.kafka.admin import create_topics
    from shared.topics import topic_names

    base = Settings()
    tag = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "topic_prefix": f"bench-{tag}-",
            "clickhouse_database": f"bench_{tag}",
            "kafka_partitions": PARTITIONS,
            "monitor_window_seconds": 60,
            "advisor_interval_seconds": 2.0,
            "advisor_window_seconds": 60.0,
            "monitor_session_timeout_seconds": 45.0,  # phase 0 pauses the worker while the burst is sent
        }
    )
    slo = settings.advisor_slo_seconds
    specs = [
        synthetic.StreamSpec(f"scale-{i}", features - features // 5, features // 5, seed=i)
        for i in range(models)
    ]
    templates = []
    for spec in specs:
        for event in synthetic.predictions(spec, 200, datetime.now(UTC), timedelta(milliseconds=1)):
            templates.append((spec.model_name.encode(), wire.encode(event), str(event.event_id).encode()))
    workers: list[Any] = []
    # other work on the machine changes a worker's capacity during the run: read the figures against it
    figures: dict[str, Any] = {"load_average_start": round(os.getloadavg()[0], 2)}
    with (
        local_stack(base, components=[Component.KAFKA, Component.CLICKHOUSE]),
        tempfile.TemporaryDirectory() as tmp,
    ):
        topics = topic_names(settings.topic_prefix)
        create_topics(settings.kafka_bootstrap, topics.all(), PARTITIONS, settings.kafka_replication_factor)
        profiles = write_profiles(Path(tmp), {s.model_name: synthetic.reference_profile(s) for s in specs})
        advisor = AdvisorRun(settings)
        feeder = Feeder(settings, topics.predictions, templates)

        def start_worker() -> None:
            worker, port = start_monitor_worker(settings, profiles, Path(tmp), f"monitor-{len(workers)}")
            workers.append(worker)
            advisor.monitor_urls.append(f"http://127.0.0.1:{port}/health")

        try:
            start_worker()
            # the advisor runs all along, as it does in production: it sees the burst drained and
            # remembers what a worker really drains on this machine
            advisor.start()
            feeder.start()
            feeder.burst = 2_000
            _wait(lambda: _lag(settings)[2] >= 2_000, 180, "the first worker's first commit")
            print(
                f"phase 0: {calibrate_events:,} events sent while the worker is paused (as in a restart); "
                "it drains them at its rate ...",
                flush=True,
            )
            # paused, the worker piles up a backlog the feeder alone could not (it produces barely faster
            # than one worker drains); under the session timeout, so the group does not rebalance
            workers[0].proc.send_signal(signal.SIGSTOP)
            try:
                target = feeder.sent + calibrate_events
                feeder.burst = calibrate_events
                _wait(lambda: feeder.sent >= target, 60, "the burst sent", poll=0.2)
            finally:
                workers[0].proc.send_signal(signal.SIGCONT)
            time.sleep(1.0)
            drained_rate = _drain_rate(settings, 300)
            figures["events_per_s_1w"] = round(drained_rate)
            print(f"  one worker drains {drained_rate:,.0f} events/s", flush=True)
            one = _streaming_rate(settings, feeder, drained_rate, figures)

            print(f"phase 1: steady {0.4 * one:,.0f} events/s for {steady_s:.0f} s ...", flush=True)
            steady_began = time.monotonic()
            feeder.rate = 0.4 * one
            time.sleep(steady_s)
            steady_advice = [e for t, e in advisor.given if t >= steady_began and e.kind != "disk"]
            figures["false_advice"] = len(steady_advice)
            busy = advisor.busy_capacity
            figures["capacity_per_worker_busy_time"] = round(busy) if busy else None
            drained = advisor.drained_capacity
            figures["capacity_per_worker_drained"] = round(drained) if drained else None

            top = 1.8 * one
            print(f"phase 2: ramp to {top:,.0f} events/s over {ramp_s:.0f} s ...", flush=True)
            ramp_began = time.monotonic()
            first_advice: tuple[float, Any] | None = None
            breach: float | None = None
            while time.monotonic() - ramp_began < ramp_s:
                elapsed = time.monotonic() - ramp_began
                feeder.rate = 0.4 * one + (top - 0.4 * one) * elapsed / ramp_s
                at, lag, _ = _lag(settings)
                if first_advice is None:
                    first_advice = next(
                        (
                            (t, e)
                            for t, e in advisor.given
                            if t >= ramp_began and e.kind in ("scale_up", "partitions")
                        ),
                        None,
                    )
                if breach is None and lag > slo * one:
                    breach = at
                    print(f"  the SLO broke {at - ramp_began:.0f} s into the ramp (lag {lag:,})", flush=True)
                if breach is not None and first_advice is not None:
                    break
                time.sleep(1.0)
            hold_rate = feeder.rate
            advised = first_advice[1].workers_advised if first_advice else None
            figures["advice_lead_s"] = (
                round(breach - first_advice[0], 1)
                if breach is not None and first_advice is not None
                else None
            )
            figures["advised_workers"] = advised
            figures["advice_message"] = first_advice[1].message if first_advice else None
            at_advice = first_advice[1].capacity_per_worker if first_advice else None
            figures["capacity_per_worker_at_advice"] = round(at_advice) if at_advice else None

            print(f"phase 3: hold {hold_rate:,.0f} events/s; which worker count keeps the SLO?", flush=True)
            held = None
            for n in sorted({2, *([advised] if advised else [])}):
                n = min(n, PARTITIONS)
                while len(workers) < n:
                    start_worker()
                time.sleep(15.0)  # the group rebalances, the new worker warms up
                drained = _drain_rate(settings, 120)
                if n == 2:
                    figures["events_per_s_2w"] = round(drained)
                lags = []
                began = time.monotonic()
                while time.monotonic() - began < hold_s:
                    lags.append(_lag(settings)[1])
                    time.sleep(1.0)
                worst = sorted(lags)[int(0.95 * (len(lags) - 1))]
                ok = worst <= slo * one * n
                print(f"  {n} workers: p95 lag {worst:,} ({'holds' if ok else 'breaks'} the SLO)", flush=True)
                if ok:
                    held = n
                    break
            figures["held_workers"] = held
            figures["capacity_per_worker_advisor"] = round(advisor.capacity) if advisor.capacity else None
            for thread in (feeder, advisor):
                if thread.error is not None:
                    raise RuntimeError(f"{thread.name} failed: {thread.error}")
        finally:
            feeder.stopping.set()
            advisor.stopping.set()
            for thread in (feeder, advisor):
                if thread.is_alive():
                    thread.join(30)  # a feeder stops after the batch in flight
            for worker in workers:
                worker.stop()
            clean_up(settings)
        print(
            f"broker ceiling: {ceiling_records:,} of the same events with Kafka's perf tools ...", flush=True
        )
        ceiling = measure_broker_ceiling(
            base.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-"}),
            [payload for _, payload, _ in templates],
            records=ceiling_records,
            partitions=PARTITIONS,
        )
    figures |= ceiling_figures(figures.get("events_per_s_1w"), ceiling)
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    figures.setdefault("events_per_s_2w", None)
    print(json.dumps(figures))
    return figures


def ceiling_figures(one_worker: float | None, ceiling: BrokerCeiling) -> dict[str, Any]:
    """The broker's rates and one worker's share of its consume rate (``bench monitor --workers`` too).

    >>> c = BrokerCeiling(40_000.0, 100_000.0, 1000, 950.0, 6)
    >>> ceiling_figures(20_000.0, c)["monitor_share_of_ceiling"]
    0.2
    """
    return {
        "broker_produce_events_per_s": round(ceiling.produce_events_per_s),
        "broker_consume_events_per_s": round(ceiling.consume_events_per_s),
        "broker_ceiling_events_per_s": round(ceiling.events_per_s),
        "monitor_share_of_ceiling": round(ceiling.share(one_worker), 3) if one_worker else None,
    }
