"""Cost arithmetic, pure: resources per model and week priced in money, and what each promotion cost and bought.

Inputs are rows of ``model_costs_weekly``, ``training_runs`` and ``window_metrics`` as plain values; nothing
here talks to ClickHouse, so a test can check every sum by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

GB = 1e9
DAYS_PER_MONTH = 30.4375


@dataclass(frozen=True)
class Prices:
    """Unit prices (``DRIFTLOOP_COST_CPU_HOUR``, ``DRIFTLOOP_COST_GB_MONTH``), in the user's currency."""

    cpu_hour: float
    gb_month: float

    def cpu(self, seconds: float) -> float:
        return seconds / 3600 * self.cpu_hour

    def storage_month(self, nbytes: float) -> float:
        return nbytes / GB * self.gb_month


@dataclass(frozen=True)
class WeekUsage:
    """One row of ``model_costs_weekly``: what one model used in one week (Monday, UTC)."""

    model_name: str
    week: date
    training_runs: int = 0
    promoted_runs: int = 0
    rejected_runs: int = 0
    training_cpu_s: float = 0.0
    predictions: int = 0
    labels: int = 0
    served_requests: int = 0
    serving_cpu_s: float = 0.0
    monitor_cpu_s: float = 0.0
    clickhouse_bytes: float = 0.0
    artifact_bytes: float = 0.0

    @property
    def cpu_s(self) -> float:
        return self.training_cpu_s + self.serving_cpu_s + self.monitor_cpu_s

    @property
    def stored_bytes(self) -> float:
        return self.clickhouse_bytes + self.artifact_bytes


@dataclass(frozen=True)
class CostLine:
    """A week's (or a total's) usage with its money: ``compute_cost`` is the CPU spent, ``storage_cost_month``
    what keeping the bytes written costs per month."""

    usage: WeekUsage
    compute_cost: float
    storage_cost_month: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self.usage),
            "cpu_s": self.usage.cpu_s,
            "compute_cost": self.compute_cost,
            "storage_cost_month": self.storage_cost_month,
        }


def priced(usage: WeekUsage, prices: Prices) -> CostLine:
    """``usage`` with its money.

    >>> line = priced(WeekUsage("churn", date(2026, 1, 5), training_cpu_s=5400, clickhouse_bytes=2e9),
    ...               Prices(cpu_hour=0.04, gb_month=0.1))
    >>> round(line.compute_cost, 4), round(line.storage_cost_month, 4)
    (0.06, 0.2)
    """
    return CostLine(usage, prices.cpu(usage.cpu_s), prices.storage_month(usage.stored_bytes))


def weekly_costs(rows: Iterable[WeekUsage], prices: Prices) -> list[CostLine]:
    return [priced(row, prices) for row in rows]


SUMMED = [f.name for f in fields(WeekUsage) if f.name not in ("model_name", "week")]


def model_totals(rows: Sequence[WeekUsage], prices: Prices) -> list[CostLine]:
    """One line per model: every weekly figure summed (``week`` is the first week), then priced."""
    by_model: dict[str, list[WeekUsage]] = {}
    for row in rows:
        by_model.setdefault(row.model_name, []).append(row)
    totals = []
    for model, weeks in sorted(by_model.items()):
        sums = {name: sum(getattr(w, name) for w in weeks) for name in SUMMED}
        totals.append(priced(WeekUsage(model, min(w.week for w in weeks), **sums), prices))
    return totals


@dataclass(frozen=True)
class Run:
    """A ``training_runs`` row, the part cost needs."""

    model_name: str
    started_at: datetime
    finished_at: datetime
    promoted: bool
    version: int | None
    cpu_s: float
    artifact_bytes: float


@dataclass(frozen=True)
class AccuracyWindow:
    """A window's ``accuracy`` from ``window_metrics``."""

    model_name: str
    version: str
    window_start: datetime
    accuracy: float


@dataclass(frozen=True)
class Payoff:
    """What one promoted version cost (every run since the previous promotion: the rejected ones were the
    price of finding it) and the accuracy it recovered: its first windows after the promotion against the
    previous versions' last windows before it."""

    model_name: str
    version: int | None
    promoted_at: datetime
    runs: int
    training_cpu_s: float
    artifact_bytes: float
    cost: float
    accuracy_before: float | None
    accuracy_after: float | None

    @property
    def recovered(self) -> float | None:
        """Accuracy after minus before (0.05: five points recovered); None until both are known."""
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return self.accuracy_after - self.accuracy_before

    @property
    def cost_per_point(self) -> float | None:
        """Cost per accuracy point (0.01) recovered; None when it recovered nothing."""
        recovered = self.recovered
        return self.cost / (recovered * 100) if recovered is not None and recovered > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recovered": self.recovered, "cost_per_point": self.cost_per_point}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def payoffs(
    runs: Iterable[Run], windows: Iterable[AccuracyWindow], prices: Prices, n_windows: int = 3
) -> list[Payoff]:
    """One :class:`Payoff` per promoted run, oldest first per model.

    A version's cost is the CPU of its run and of the runs since the previous promotion, plus a month of
    keeping their artifacts. Accuracy before: the mean of the last ``n_windows`` windows of other versions that
    started before the promotion; after: the mean of the new version's first ``n_windows`` from it on.

    >>> t = datetime(2026, 1, 5, 12)
    >>> runs = [Run("m", t, t + timedelta(minutes=10), False, 2, 1800, 0),
    ...         Run("m", t + timedelta(hours=1), t + timedelta(hours=1, minutes=10), True, 3, 1800, 1e9)]
    >>> windows = [AccuracyWindow("m", "1", t + timedelta(hours=h), a) for h, a in ((0, 0.7), (1, 0.6))]
    >>> windows += [AccuracyWindow("m", "3", t + timedelta(hours=2), 0.9)]
    >>> [p] = payoffs(runs, windows, Prices(cpu_hour=1.0, gb_month=1.0), n_windows=1)
    >>> p.runs, p.cost, p.accuracy_before, p.accuracy_after, round(p.recovered, 2), round(p.cost_per_point, 3)
    (2, 2.0, 0.6, 0.9, 0.3, 0.067)
    """
    by_model: dict[str, list[AccuracyWindow]] = {}
    for window in windows:
        by_model.setdefault(window.model_name, []).append(window)
    for model_windows in by_model.values():
        model_windows.sort(key=lambda w: w.window_start)
    pending: dict[str, list[Run]] = {}
    out: list[Payoff] = []
    for run in sorted(runs, key=lambda r: (r.model_name, r.started_at)):
        since = pending.setdefault(run.model_name, [])
        since.append(run)
        if not run.promoted:
            continue
        pending[run.model_name] = []
        at, version = run.finished_at, str(run.version)
        model_windows = by_model.get(run.model_name, [])
        before = [w.accuracy for w in model_windows if w.window_start < at and w.version != version]
        after = [w.accuracy for w in model_windows if w.window_start >= at and w.version == version]
        cpu_s = sum(r.cpu_s for r in since)
        artifacts = sum(r.artifact_bytes for r in since)
        out.append(
            Payoff(
                model_name=run.model_name,
                version=run.version,
                promoted_at=at,
                runs=len(since),
                training_cpu_s=cpu_s,
                artifact_bytes=artifacts,
                cost=prices.cpu(cpu_s) + prices.storage_month(artifacts),
                accuracy_before=_mean(before[-n_windows:]),
                accuracy_after=_mean(after[:n_windows]),
            )
        )
    return out


_RELATIVE = re.compile(r"^(\d+)\s*([dw])$")


def since_date(text: str, today: date) -> date:
    """``--since``: a date (``2026-01-05``) or a span back from today (``30d``, ``8w``).

    >>> since_date("8w", date(2026, 3, 2)), since_date("2026-01-05", date(2026, 3, 2))
    (datetime.date(2026, 1, 5), datetime.date(2026, 1, 5))
    """
    match = _RELATIVE.match(text.strip().lower())
    if match:
        count, unit = int(match.group(1)), match.group(2)
        return today - timedelta(days=count * (7 if unit == "w" else 1))
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--since {text!r}: give a date (2026-01-05) or a span back (30d, 8w)") from None
