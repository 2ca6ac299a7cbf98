"""From readings to advice: when the SLO breaks at the current trend, and how many workers hold it.

The advisor watches a consumer group (the monitor's) through its offsets: inflow is the growth of the
partitions' end offsets, processed the growth of the group's committed offsets, lag the difference. A
worker's capacity (events/s at 100% busy) comes from its own busy time (process CPU plus ClickHouse waits),
and while the lag grows it is capped by what the workers were seen to process: a worker that cannot keep up
shows its capacity directly. Everything is fitted with a
robust line over the last minutes (:func:`~services.advisor.domain.trend.theil_sen`), never read off a
single sample, and a steady stream says nothing.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from services.advisor.domain.trend import Trend, theil_sen

AdviceKind = Literal["scale_up", "scale_down", "partitions", "disk"]


@dataclass(frozen=True)
class GroupReading:
    """One look at a consumer group: offsets summed over its partitions, and who consumes them."""

    at: float
    end: int
    committed: int
    partitions: int
    workers: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


@dataclass(frozen=True)
class WorkerReading:
    """One worker's running totals, from its ``/health``: seconds it was busy, events it handled.

    A monitor also reports what its busy time is made of: process CPU seconds, seconds waiting for
    ClickHouse, and seconds running; with those the advisor counts busy as :func:`spent_s` says.
    """

    worker: str
    busy_s: float
    handled: int
    cpu_s: float | None = None
    clickhouse_wait_s: float | None = None
    running_s: float | None = None


def spent_s(reading: WorkerReading) -> float:
    """Seconds the worker really spent: the larger of its ``busy_s`` and its CPU plus ClickHouse waits (at
    most its running time); each is a lower bound of the time it was occupied.

    A monitor's ``busy_s`` first counted every wait for Kafka records as idle, though the batches in hand
    were stored and judged meanwhile: on a loaded 2-core machine it made the worker look half as busy as
    it was, and its capacity twice as high (docs/advisor.md). CPU and waits can overlap (a batch is
    judged while the next is inserted): their sum errs towards busy, the safe side.

    >>> spent_s(WorkerReading("w", 3.0, 1000, cpu_s=4.0, clickhouse_wait_s=1.5, running_s=10.0))
    5.5
    >>> spent_s(WorkerReading("w", 3.0, 1000, cpu_s=8.0, clickhouse_wait_s=4.0, running_s=10.0))
    10.0
    >>> spent_s(WorkerReading("w", 7.0, 1000, cpu_s=2.0, clickhouse_wait_s=1.0, running_s=10.0))
    7.0
    >>> spent_s(WorkerReading("w", 3.0, 1000))
    3.0
    """
    if reading.cpu_s is None or reading.clickhouse_wait_s is None:
        return reading.busy_s
    spent = reading.cpu_s + reading.clickhouse_wait_s
    if reading.running_s is not None:
        spent = min(spent, reading.running_s)
    return max(reading.busy_s, spent)


@dataclass(frozen=True)
class Policy:
    """What the advisor protects and how cautious it is (``advisor_*`` settings)."""

    slo_s: float = 2.0
    headroom: float = 1.25
    horizon_s: float = 180.0
    window_s: float = 120.0
    min_readings: int = 5
    min_span_s: float = 20.0
    # a trend smaller than these shares of the inflow is noise, not a change: the hysteresis that keeps a
    # steady stream silent
    min_ramp_share: float = 0.20  # inflow growth over the window, as a share of the inflow
    min_lag_growth_share: float = 0.02  # lag growth per second, as a share of the inflow per second
    settle_s: float = 60.0  # a backlog being cleared within this long needs no more workers
    down_utilisation: float = 0.5  # scale down only to workers that would stay at most half busy
    disk_warn_days: float = 30.0

    def __post_init__(self) -> None:
        if self.slo_s <= 0 or self.horizon_s <= 0 or self.window_s <= 0:
            raise ValueError("slo_s, horizon_s and window_s must be positive")
        if self.headroom < 1:
            raise ValueError("headroom must be at least 1 (1.25 asks for 25% spare capacity)")
        if self.min_readings < 3:
            raise ValueError("min_readings must be at least 3 for a trend")
        if not 0 < self.down_utilisation <= 1:
            raise ValueError("down_utilisation must be in (0, 1]")


@dataclass(frozen=True)
class Forecast:
    """What the trend says about one consumer group now; ``breach_in_s`` is None when the SLO holds."""

    at: float
    inflow: float
    inflow_ramp: float
    processed: float
    lag: float
    lag_growth: float
    workers: int
    partitions: int
    capacity: float | None
    lag_budget: float
    breach_in_s: float | None
    capacity_capped: bool = False
    """True when ``capacity`` is the processed rate seen while the lag grew, lower than the busy-time one."""


@dataclass(frozen=True)
class Advice:
    """One piece of advice a person (or an autoscaler) can act on; ``message`` is the sentence to show."""

    target: str
    kind: AdviceKind
    message: str
    workers_now: int | None = None
    workers_advised: int | None = None
    partitions: int | None = None
    inflow_per_s: float | None = None
    capacity_per_worker: float | None = None
    lag: float | None = None
    lag_growth_per_s: float | None = None
    breach_in_s: float | None = None
    days_until_full: float | None = None


def capacity_per_worker(
    before: Sequence[WorkerReading], after: Sequence[WorkerReading], min_busy_s: float = 0.5
) -> float | None:
    """Events/s one worker handles at 100% busy: events handled over busy seconds (:func:`spent_s`)
    between two readings.

    A worker that restarted (its totals went down) or was barely busy is left out; None when none is left.

    Examples
    --------
    >>> a = [WorkerReading("w1", 10.0, 100_000), WorkerReading("w2", 4.0, 50_000)]
    >>> b = [WorkerReading("w1", 12.0, 220_000), WorkerReading("w2", 1.0, 9_000)]  # w2 restarted
    >>> capacity_per_worker(a, b)
    60000.0
    """
    then = {w.worker: w for w in before}
    busy = handled = 0.0
    for now in after:
        old = then.get(now.worker)
        if old is None or spent_s(now) < spent_s(old) or now.handled < old.handled:
            continue
        busy += spent_s(now) - spent_s(old)
        handled += now.handled - old.handled
    return handled / busy if busy >= min_busy_s and handled > 0 else None


SATURATED_BACKLOG_S = 2.0


def saturated_rate_per_worker(
    before: GroupReading, after: GroupReading, min_backlog: int = 1_000
) -> float | None:
    """Events/s per worker between two readings when the workers had work waiting all along; else None.

    With a backlog of at least ``SATURATED_BACKLOG_S`` seconds of their work at both ends (and
    ``min_backlog``), the workers never ran dry in between, so what they committed is what they can do on
    this machine now: CPU shared with other processes, throttling and ClickHouse's own cost included, which
    a worker's busy time cannot see. A worker that keeps up holds a standing lag of its pipeline's delay
    (about a second of inflow; more on a loaded machine): two seconds of work tells the two apart.
    Readings across a rebalance (the worker count changed) say nothing.

    >>> saturated_rate_per_worker(GroupReading(0, 500_000, 100_000, 6, 2), GroupReading(2, 540_000, 180_000, 6, 2))
    20000.0

    Keeping up with a standing lag of one second of work:

    >>> saturated_rate_per_worker(GroupReading(0, 120_000, 100_000, 6, 1), GroupReading(2, 160_000, 140_000, 6, 1))
    """
    span = after.at - before.at
    done = after.committed - before.committed
    if span <= 0 or done <= 0 or after.workers < 1 or after.workers != before.workers:
        return None
    if min(before.lag, after.lag) < max(min_backlog, SATURATED_BACKLOG_S * done / span):
        return None
    return done / span / after.workers


class DrainCeiling:
    """What one worker was seen to drain while it had a backlog, remembered for ``memory_s``.

    The advisor's capacity is the lower of this and the busy-time estimate: a busy-time figure on a machine
    whose cores are shared (or a throttled container) can be twice what the worker really drains. The
    ceiling is the median of the rates seen: commits come in whole batches, so a single interval can show
    half again the real rate (the upper quartile said 37k events/s for a worker draining 26k), and one slow
    interval cannot pull the median down either. An outage that stops the worker commits nothing and gives
    no sample.

    >>> c = DrainCeiling(memory_s=600)
    >>> for t, rate in enumerate([18_000, 17_500, 900, 18_200, 27_000]):
    ...     c.add(t, rate)
    >>> c.value(10)
    18000
    >>> c.value(700) is None  # forgotten
    True
    """

    def __init__(self, memory_s: float = 3600.0, min_samples: int = 2) -> None:
        self.memory_s, self.min_samples = memory_s, min_samples
        self._seen: list[tuple[float, float]] = []

    def add(self, at: float, rate: float) -> None:
        self._seen.append((at, rate))

    def value(self, now: float) -> float | None:
        self._seen = [(t, r) for t, r in self._seen if now - t <= self.memory_s]
        if len(self._seen) < self.min_samples:
            return None
        return statistics.median(r for _, r in self._seen)


def _rates(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Growth per second between consecutive readings, placed at the middle of each interval."""
    return [
        ((t1 + t2) / 2, (y2 - y1) / (t2 - t1)) for (t1, y1), (t2, y2) in itertools.pairwise(points) if t2 > t1
    ]


def _time_to_fill(room: float, excess: float, ramp: float) -> float | None:
    """Seconds until a backlog growing at ``excess + ramp * t`` per second has taken ``room``; None: never."""
    if room <= 0:
        return 0.0
    if ramp <= 0:
        return room / excess if excess > 0 else None
    if excess >= 0:
        return (-excess + math.sqrt(excess * excess + 2 * ramp * room)) / ramp
    # inflow under capacity now: nothing builds up until it crosses, then the backlog grows quadratically
    return -excess / ramp + math.sqrt(2 * room / ramp)


FALLING_BEHIND = 0.9  # processing under 90% of the inflow while the lag grows: the workers are saturated
CATCHING_UP = 0.1  # processing over 110% of the inflow: a backlog is being cleared


def forecast(
    readings: Sequence[GroupReading], capacity: float | None, policy: Policy, *, drained: bool = False
) -> Forecast | None:
    """The group's trend over the last ``policy.window_s``; None while there are too few readings.

    ``drained``: the capacity is a drain ceiling seen over backlogs (:class:`DrainCeiling`), trusted over
    the processed rate of the last few readings, which one starved minute can pull far down.

    ``capacity`` is one worker's events/s at 100% busy, None when unknown (then a growing lag alone can
    raise the alarm). The lag budget is what the workers drain within the SLO: ``slo_s`` x their capacity.

    Examples
    --------
    A stream ramping by 500 events/s each second for two minutes, towards two workers of 40k/s each:

    >>> ramp = [GroupReading(t, sum(10_000 + 500 * s for s in range(t)), sum(10_000 + 500 * s for s in range(t)), 6, 2)
    ...         for t in range(0, 125, 5)]
    >>> f = forecast(ramp, 40_000.0, Policy())
    >>> round(f.inflow), round(f.inflow_ramp), f.lag_budget, round(f.breach_in_s)
    (69750, 500, 160000.0, 16)
    """
    if not readings:
        return None
    newest = readings[-1].at
    recent = [r for r in readings if r.at >= newest - policy.window_s]
    if len(recent) < policy.min_readings or newest - recent[0].at < policy.min_span_s:
        return None
    rates = _rates([(r.at, float(r.end)) for r in recent])
    inflow = theil_sen(rates)
    done = _rates([(r.at, float(r.committed)) for r in recent])
    processed = theil_sen(done)
    lag: Trend = theil_sen([(r.at, float(r.lag)) for r in recent])
    now = recent[-1]
    # a step up shows in the last few rates before the line over the window bends: take the higher
    inflow_now = max(0.0, inflow.value(newest), statistics.median(rate for _, rate in rates[-3:]))
    processed_now = max(0.0, processed.value(newest))
    # the line's level, but never above what the last readings show: a backlog cleared a moment ago still
    # lifts a line over the window
    lag_now = max(0.0, min(lag.level, statistics.median(float(r.lag) for r in recent[-3:])))
    workers = max(1, now.workers)
    # a ramp is extrapolated minutes ahead: only from readings over half the window at least (a producer
    # warming up over its first seconds is not a ramp), and only when it is more than noise
    spans = newest - recent[0].at >= policy.window_s / 2
    ramp = (
        inflow.slope
        if spans and inflow.slope * policy.window_s >= policy.min_ramp_share * inflow_now
        else 0.0
    )
    if ramp > 0 and not rises_by_thirds(rates, ramp):
        ramp = 0.0
    # growing over the window, and still rising in the last readings (not a backlog cleared since)
    growing = (
        lag.slope > policy.min_lag_growth_share * max(inflow_now, 1.0) and recent[-1].lag > recent[-3].lag
    )
    capped = False
    # falling behind, not a standing lag that grows with the inflow while the workers keep up
    behind = growing and processed_now < FALLING_BEHIND * inflow_now
    if capacity and behind and not drained:
        # workers that fall behind process all they can: that rate is their capacity, whatever their busy
        # time says (a worker that waits a lot or shares its cores looks less busy than it is)
        seen = saturated_rate(recent, policy.min_readings) / workers
        if 0 < seen < capacity:
            capacity, capped = seen, True
    drain = workers * capacity if capacity else max(processed_now, 1.0)
    budget = policy.slo_s * drain
    # a backlog the workers are clearing (a burst, a restart) and will have cleared within settle_s is
    # not a reason for more workers: it is gone before they would start
    clearing = statistics.median(rate for _, rate in done[-3:]) - inflow_now  # the last rates: it just began
    settling = clearing > CATCHING_UP * max(inflow_now, 1.0) and lag_now / clearing <= policy.settle_s
    backlog = 0.0 if settling else lag_now
    breach: list[float] = []
    if backlog > budget:
        breach.append(0.0)
    if growing and not settling:  # the line over the window still rises with the backlog being cleared
        breach.append((budget - lag_now) / lag.slope)
    if capacity:
        # against the capacity less the headroom: near 100% busy the lag grows long before the inflow
        # passes the capacity (batches wait their turn), so the SLO is at risk from 1/headroom on
        excess_breach = _time_to_fill(budget - backlog, inflow_now - drain / policy.headroom, ramp)
        if excess_breach is not None and (ramp > 0 or growing):
            breach.append(excess_breach)
    return Forecast(
        at=newest,
        inflow=inflow_now,
        inflow_ramp=ramp,
        processed=processed_now,
        lag=lag_now,
        lag_growth=lag.slope if growing else 0.0,
        workers=now.workers,
        partitions=now.partitions,
        capacity=capacity,
        lag_budget=budget,
        breach_in_s=max(0.0, min(breach)) if breach else None,
        capacity_capped=capped,
    )


def rises_by_thirds(rates: Sequence[tuple[float, float]], slope: float) -> bool:
    """Whether ``rates`` rise at both ends of the window: in its first third and in its last, each by at
    least a third of ``slope``.

    A step (a stream switched on, a restart's burst and the gap after it) tilts a line fitted over the
    window like a ramp, and each half of the window rises when the step falls in the middle. But a step
    leaves the first third or the last one level; only a ramp that goes on lifts both.

    >>> ramp = [(t, 1_000.0 + 50 * t) for t in range(60)]
    >>> rises_by_thirds(ramp, 50.0)
    True
    >>> step = [(t, 0.0 if t < 30 else 3_000.0) for t in range(60)]
    >>> rises_by_thirds(step, 50.0)
    False
    """
    if len(rates) < 9:
        return False
    first, last = rates[0][0], rates[-1][0]
    third = (last - first) / 3
    ends = ([(t, r) for t, r in rates if t <= first + third], [(t, r) for t, r in rates if t >= last - third])
    return all(len(end) >= 3 and theil_sen(end).slope >= slope / 3 for end in ends)


def saturated_rate(readings: Sequence[GroupReading], last: int) -> float:
    """Events/s the group processed over its ``last`` readings (committed offsets' growth, end to end).

    One span over several readings, not the median of single intervals: commits move in whole batches.

    >>> rs = [GroupReading(t, 30_000 * t, 20_000 * t, 6, 1) for t in range(0, 50, 5)]
    >>> saturated_rate(rs, 5)
    20000.0
    """
    tail = readings[-max(2, last) :]
    span = tail[-1].at - tail[0].at
    if len(tail) < 2 or span <= 0:
        return 0.0
    return max(0.0, (tail[-1].committed - tail[0].committed) / span)


def _rate(x: float) -> str:
    """A rate or count the way a person reads it: 950, 84k, 1.2M."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:.1f}M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.0f}k"
    if abs(x) >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def advise_workers(target: str, f: Forecast, policy: Policy) -> Advice | None:
    """Scale up when the SLO breaks within the horizon, down when far fewer workers would do; else None.

    Workers needed = ceil(forecast inflow x headroom / capacity), where the forecast inflow is the trend's
    value at the horizon (a ramp keeps ramping); capped by the partitions, and the advice says when the
    partition count, not the worker count, is the limit.

    Examples
    --------
    >>> f = Forecast(at=0, inflow=84_000, inflow_ramp=0, processed=61_000, lag=1_200_000, lag_growth=23_000,
    ...              workers=2, partitions=6, capacity=61_000, lag_budget=244_000, breach_in_s=0.0)
    >>> advise_workers("monitor", f, Policy()).message
    'monitor: inflow 84k/s vs capacity 2 x 61k/s, lag 1.2M growing 23k/s, SLO (queryable <= 2 s) breached now: run 3 workers (partitions allow 6)'
    """
    capacity = f.capacity
    if capacity is None and f.lag_growth > 0:
        capacity = f.processed / max(1, f.workers)  # saturated workers: what they do is what they can
    if not capacity:
        return None
    slo = f"SLO (queryable <= {policy.slo_s:g} s)"
    if f.breach_in_s is not None and f.breach_in_s <= policy.horizon_s:
        expected = max(f.inflow, f.inflow + f.inflow_ramp * policy.horizon_s)
        # a backlog must drain as well: spread it over the horizon
        needed = math.ceil((expected + f.lag / policy.horizon_s) * policy.headroom / capacity)
        if needed <= f.workers:
            needed = f.workers + 1  # the trend says it breaks with the workers there are
        when = "now" if f.breach_in_s < 1 else f"in {f.breach_in_s:.0f} s"
        growth = f" growing {_rate(f.lag_growth)}/s" if f.lag_growth > 0 else ""
        ramp = f" (+{_rate(f.inflow_ramp)}/s each second)" if f.inflow_ramp > 0 else ""
        head = (
            f"{target}: inflow {_rate(f.inflow)}/s{ramp} vs capacity {f.workers} x {_rate(capacity)}/s, "
            f"lag {_rate(f.lag)}{growth}, {slo} breached {when}"
        )
        common = dict(
            target=target,
            workers_now=f.workers,
            partitions=f.partitions,
            inflow_per_s=f.inflow,
            capacity_per_worker=capacity,
            lag=f.lag,
            lag_growth_per_s=f.lag_growth,
            breach_in_s=f.breach_in_s,
        )
        if f.workers >= f.partitions:
            return Advice(
                kind="partitions",
                message=f"{head}: partitions cap the {target} at {f.partitions} workers, it needs {needed}: "
                f"add partitions",
                workers_advised=f.partitions,
                **common,  # type: ignore[arg-type]
            )
        if needed > f.partitions:
            return Advice(
                kind="partitions",
                message=f"{head}: run {f.partitions} workers; partitions cap the {target} at {f.partitions} "
                f"workers, it needs {needed}: add partitions",
                workers_advised=f.partitions,
                **common,  # type: ignore[arg-type]
            )
        return Advice(
            kind="scale_up",
            message=f"{head}: run {needed} workers (partitions allow {f.partitions})",
            workers_advised=needed,
            **common,  # type: ignore[arg-type]
        )
    if f.breach_in_s is None and f.inflow_ramp <= 0 and f.lag <= f.lag_budget / 2 and f.workers > 1:
        enough = max(1, math.ceil(f.inflow / (capacity * policy.down_utilisation)))
        if enough < f.workers:
            return Advice(
                target=target,
                kind="scale_down",
                message=f"{target}: inflow {_rate(f.inflow)}/s vs capacity {f.workers} x {_rate(capacity)}/s: "
                f"{enough} worker{'s' if enough > 1 else ''} would do",
                workers_now=f.workers,
                workers_advised=enough,
                partitions=f.partitions,
                inflow_per_s=f.inflow,
                capacity_per_worker=capacity,
                lag=f.lag,
            )
    return None


@dataclass(frozen=True)
class DiskReading:
    """ClickHouse's bytes on disk per table at one time, and the free space of its disk."""

    at: float
    table_bytes: Mapping[str, int]
    free_bytes: int


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def advise_disk(readings: Sequence[DiskReading], policy: Policy, min_span_s: float = 60.0) -> Advice | None:
    """Days until ClickHouse's disk is full at the trend of its tables' growth; advice under ``disk_warn_days``.

    Examples
    --------
    >>> day = 86_400
    >>> rs = [DiskReading(t * 3600, {"predictions": 10**9 + t * 10**8, "labels": 10**6}, 40 * 10**9 - t * 10**8)
    ...       for t in range(6)]
    >>> advise_disk(rs, Policy()).message
    'ClickHouse disk full in 16 days at the current rate (+95.4 MB/h, most from predictions +95.4 MB/h; 36.8 GB free)'
    """
    if len(readings) < 3 or readings[-1].at - readings[0].at < min_span_s:
        return None
    total = theil_sen([(r.at, float(sum(r.table_bytes.values()))) for r in readings])
    if total.slope <= 0:
        return None
    free = readings[-1].free_bytes
    days = free / total.slope / 86_400
    if days >= policy.disk_warn_days:
        return None
    tables = sorted({t for r in readings for t in r.table_bytes})
    growth = {t: theil_sen([(r.at, float(r.table_bytes.get(t, 0))) for r in readings]).slope for t in tables}
    top = max(growth, key=lambda t: growth[t])
    return Advice(
        target="clickhouse",
        kind="disk",
        message=f"ClickHouse disk full in {days:.0f} days at the current rate (+{_size(total.slope * 3600)}/h, "
        f"most from {top} +{_size(growth[top] * 3600)}/h; {_size(free)} free)",
        days_until_full=days,
    )


class Hysteresis:
    """Lets advice through only when it changes (or ``repeat_s`` passed), and forgets it once it has been
    clear for ``clear_s``.

    >>> h = Hysteresis(repeat_s=600, clear_s=60)
    >>> a = Advice("monitor", "scale_up", "run 3", workers_advised=3)
    >>> [h.admit(a, 0), h.admit(a, 10), h.admit(None, 20, "monitor"), h.admit(a, 30)]
    [True, False, False, False]

    One quiet tick between two noisy readings is the forecast wobbling too; a minute of quiet ends it:

    >>> [h.admit(None, 40, "monitor"), h.holds("monitor"), h.admit(None, 100, "monitor"), h.holds("monitor")]
    [False, True, False, False]
    >>> h.admit(a, 110)
    True

    A scale-up that grows is news; one that shrinks back within ``repeat_s`` is the forecast wobbling:

    >>> more, fewer = (Advice("monitor", "scale_up", f"run {n}", workers_advised=n) for n in (4, 3))
    >>> [h.admit(more, 140), h.admit(fewer, 150), h.admit(more, 160)]
    [True, False, False]
    >>> capped = Advice("monitor", "partitions", "run 4; add partitions", workers_advised=4)
    >>> [h.admit(capped, 170), h.admit(fewer, 180)]
    [True, False]
    """

    def __init__(self, repeat_s: float = 600.0, clear_s: float = 60.0) -> None:
        self.repeat_s, self.clear_s = repeat_s, clear_s
        self._last: dict[str, tuple[AdviceKind, int | None, float]] = {}
        self._clear_since: dict[str, float | None] = {}

    def admit(self, advice: Advice | None, now: float, target: str | None = None) -> bool:
        if advice is None:
            if target is not None and target in self._last:
                since = self._clear_since.setdefault(target, now)
                if since is not None and now - since >= self.clear_s:
                    self._last.pop(target)
                    self._clear_since.pop(target)
            return False
        since = self._clear_since.pop(advice.target, None)
        if since is not None and now - since >= self.clear_s:
            self._last.pop(advice.target, None)
        last = self._last.get(advice.target)
        if last is not None and now - last[2] < self.repeat_s:
            if last[:2] == (advice.kind, advice.workers_advised):
                return False
            # more workers is news at once, and so is "add partitions"; fewer than just advised is the
            # forecast wobbling (3, 4, 3, ...)
            up = ("scale_up", "partitions")
            newly_capped = advice.kind == "partitions" and last[0] == "scale_up"
            if (
                last[0] in up
                and advice.kind in up
                and (advice.workers_advised or 0) <= (last[1] or 0)
                and not newly_capped
            ):
                return False
        self._last[advice.target] = (advice.kind, advice.workers_advised, now)
        return True

    def holds(self, target: str) -> bool:
        """Whether advice for ``target`` still stands: given, and not yet clear for ``clear_s``."""
        return target in self._last


def median_capacity(estimates: Sequence[float]) -> float | None:
    """The median of recent capacity estimates: one slow batch does not halve the advice."""
    return statistics.median(estimates) if estimates else None
