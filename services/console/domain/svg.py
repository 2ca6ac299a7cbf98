"""Charts as inline SVG, drawn on the server: no JavaScript, nothing loaded from elsewhere.

Every chart is an ``<svg class="chart" data-points="N">`` whose data marks (lines, bars, dots) carry a
class naming what they are, so a page (and a browser test) can tell a chart with data from an empty frame.
Text is escaped; numbers are rounded to one decimal of a pixel.

>>> '<polyline' in sparkline([1.0, 2.0, None, 3.0])
True
>>> sparkline([])
'<span class="muted">no data</span>'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape

PALETTE = ("#1f77b4", "#2ca02c", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#9467bd")
REFERENCE = "#9aa5b1"
WINDOW = "#d62728"
MAX_POINTS = 600
"""A line gets at most this many points (about one per pixel); longer series are thinned evenly."""


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".") if math.isfinite(x) else "0"


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def thin(points: Sequence[tuple[float, float]], most: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most ``most`` of ``points``, evenly spaced, keeping the first and the last.

    >>> thin([(float(i), 0.0) for i in range(10)], 4)
    [(0.0, 0.0), (3.0, 0.0), (6.0, 0.0), (9.0, 0.0)]
    """
    if len(points) <= most:
        return list(points)
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def sparkline(values: Sequence[float | None], width: int = 140, height: int = 28, label: str = "") -> str:
    """A small line of ``values`` (None: a gap), scaled to its own range; empty data says so."""
    finite = _finite(values)
    if not finite:
        return '<span class="muted">no data</span>'
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    runs: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            runs.append([])
            continue
        y = height - 2 - (v - low) / span * (height - 4)
        runs[-1].append(f"{_n(i * step)},{_n(y)}")
    lines = "".join(
        f'<polyline class="data line" points="{" ".join(run)}"/>'
        if len(run) > 1
        else f'<circle class="data dot" cx="{run[0].split(",")[0]}" cy="{run[0].split(",")[1]}" r="1.5"/>'
        for run in runs
        if run
    )
    title = f"{escape(label)} {low:.3g} to {high:.3g}, last {finite[-1]:.3g}"
    return (
        f'<svg class="chart spark" data-points="{len(finite)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img"><title>{title}</title>{lines}</svg>'
    )


@dataclass(frozen=True)
class Series:
    """One line of a time chart: ``points`` are (time, value); None values break the line."""

    name: str
    points: Sequence[tuple[datetime, float | None]]
    colour: str = PALETTE[0]
    dots: bool = False


@dataclass(frozen=True)
class Mark:
    """A vertical line at a moment with a short label (a promotion, a rollback, a drift alert)."""

    at: datetime
    label: str
    colour: str = "#ff7f0e"


@dataclass
class _Frame:
    width: int
    height: int
    t0: float
    t1: float
    y0: float
    y1: float
    left: int = 48
    right: int = 12
    top: int = 10
    bottom: int = 24
    parts: list[str] = field(default_factory=list)

    def x(self, t: float) -> float:
        return self.left + (t - self.t0) / ((self.t1 - self.t0) or 1.0) * (
            self.width - self.left - self.right
        )

    def y(self, v: float) -> float:
        inner = self.height - self.top - self.bottom
        return self.top + inner - (v - self.y0) / ((self.y1 - self.y0) or 1.0) * inner


def _axes(f: _Frame, y_label: str, time_axis: bool = True) -> None:
    bottom = f.height - f.bottom
    f.parts.append(
        f'<line class="axis" x1="{f.left}" y1="{bottom}" x2="{f.width - f.right}" y2="{bottom}"/>'
        f'<line class="axis" x1="{f.left}" y1="{f.top}" x2="{f.left}" y2="{bottom}"/>'
    )
    for v in (f.y0, (f.y0 + f.y1) / 2, f.y1):
        f.parts.append(
            f'<text class="tick" x="{f.left - 4}" y="{_n(f.y(v) + 4)}" text-anchor="end">{v:.3g}</text>'
        )
    if y_label:
        f.parts.append(f'<text class="tick" x="{f.left + 4}" y="{f.top + 8}">{escape(y_label)}</text>')
    if time_axis:
        for t, anchor in ((f.t0, "start"), ((f.t0 + f.t1) / 2, "middle"), (f.t1, "end")):
            text = datetime.fromtimestamp(t, UTC).strftime("%m-%d %H:%M")
            f.parts.append(
                f'<text class="tick" x="{_n(f.x(t))}" y="{f.height - 6}" text-anchor="{anchor}">{text} UTC</text>'
            )


def time_chart(
    series: Sequence[Series],
    marks: Sequence[Mark] = (),
    *,
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
    width: int = 860,
    height: int = 220,
    css_class: str = "",
) -> str:
    """Lines over time with vertical marks and a legend; an empty chart says there is no data yet."""
    stamps = [t.timestamp() for s in series for t, v in s.points if v is not None and math.isfinite(v)]
    values = _finite([v for s in series for _, v in s.points])
    if not values:
        return '<p class="muted empty-chart">no data yet</p>'
    stamps += [m.at.timestamp() for m in marks]  # a move after the last window still shows
    low, high = y_range or (min(values), max(values))
    if low == high:
        low, high = low - 0.5, high + 0.5
    f = _Frame(width, height, min(stamps), max(stamps), low, high)
    _axes(f, y_label)
    count = 0
    for s in series:
        runs: list[list[tuple[float, float]]] = [[]]
        for t, v in s.points:
            if v is None or not math.isfinite(v):
                runs.append([])
            else:
                runs[-1].append((f.x(t.timestamp()), f.y(v)))
        for run in runs:
            run = thin(run)
            count += len(run)
            if len(run) > 1 and not s.dots:
                path = " ".join(f"{_n(x)},{_n(y)}" for x, y in run)
                f.parts.append(
                    f'<polyline class="data line" stroke="{s.colour}" points="{path}">'
                    f"<title>{escape(s.name)}</title></polyline>"
                )
            else:
                f.parts.extend(
                    f'<circle class="data dot" fill="{s.colour}" cx="{_n(x)}" cy="{_n(y)}" r="2.5">'
                    f"<title>{escape(s.name)}</title></circle>"
                    for x, y in run
                )
    for m in marks:
        moment = m.at.timestamp()
        if not f.t0 <= moment <= f.t1:
            continue
        mx = _n(f.x(moment))
        f.parts.append(
            f'<line class="mark" stroke="{m.colour}" x1="{mx}" y1="{f.top}" x2="{mx}" y2="{height - f.bottom}">'
            f"<title>{escape(m.label)}</title></line>"
        )
    legend = "".join(
        f'<span class="key"><i style="background:{s.colour}"></i>{escape(s.name)}</span>' for s in series
    )
    legend += "".join(
        f'<span class="key"><i class="markkey" style="background:{c}"></i>{escape(label)}</span>'
        for label, c in dict.fromkeys((m.label.split(":")[0], m.colour) for m in marks)
    )
    return (
        f'<figure class="plot {css_class}"><svg class="chart" data-points="{count}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">{"".join(f.parts)}</svg>'
        f'<figcaption class="legend">{legend}</figcaption></figure>'
    )


def compare_bars(
    labels: Sequence[str],
    reference: Sequence[float],
    window: Sequence[float],
    *,
    title: str = "",
    width: int = 420,
    height: int = 200,
) -> str:
    """Reference and window shares side by side per bin or category (PSI's view of a feature)."""
    if not labels:
        return '<p class="muted empty-chart">no data</p>'
    top = max([*reference, *window, 0.01])
    f = _Frame(width, height, 0.0, float(len(labels)), 0.0, top, bottom=34)
    _axes(f, "share", time_axis=False)
    slot = (width - f.left - f.right) / len(labels)
    bar = max(slot * 0.38, 1.0)
    for i, (label, ref, win) in enumerate(zip(labels, reference, window, strict=True)):
        x = f.left + i * slot + slot * 0.1
        for offset, value, cls, fill in ((0.0, ref, "reference", REFERENCE), (bar, win, "window", WINDOW)):
            y = f.y(value)
            f.parts.append(
                f'<rect class="data bar {cls}" fill="{fill}" x="{_n(x + offset)}" y="{_n(y)}" '
                f'width="{_n(bar)}" height="{_n(f.y(0) - y)}"><title>{escape(label)}: {cls} '
                f"{value:.1%}</title></rect>"
            )
        if len(labels) <= 16 and (len(labels) <= 8 or i % 2 == 0):
            f.parts.append(
                f'<text class="tick" x="{_n(x + bar)}" y="{height - 20}" text-anchor="middle">'
                f"{escape(label[:10])}</text>"
            )
    caption = (
        f'<span class="key"><i style="background:{REFERENCE}"></i>reference</span>'
        f'<span class="key"><i style="background:{WINDOW}"></i>window</span>'
    )
    return (
        f'<figure class="plot"><figcaption>{escape(title)}</figcaption><svg class="chart bars" '
        f'data-points="{2 * len(labels)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img">{"".join(f.parts)}</svg><figcaption class="legend">{caption}</figcaption></figure>'
    )


def ecdf(
    reference: Sequence[float],
    window: Sequence[float],
    *,
    title: str = "",
    width: int = 420,
    height: int = 200,
) -> str:
    """Two cumulative distributions from evenly spaced quantiles: where the window's values moved to."""
    if not reference and not window:
        return '<p class="muted empty-chart">no data</p>'
    values = [*reference, *window]
    f = _Frame(width, height, min(values), max(values), 0.0, 1.0)
    _axes(f, "share below", time_axis=False)
    for t, anchor in ((f.t0, "start"), (f.t1, "end")):
        f.parts.append(
            f'<text class="tick" x="{_n(f.x(t))}" y="{height - 6}" text-anchor="{anchor}">{t:.3g}</text>'
        )
    count = 0
    for quantiles, cls, stroke in ((reference, "reference", REFERENCE), (window, "window", WINDOW)):
        if len(quantiles) < 2:
            continue
        n = len(quantiles) - 1
        pts = thin([(f.x(q), f.y(i / n)) for i, q in enumerate(quantiles)], 200)
        count += len(pts)
        path = " ".join(f"{_n(x)},{_n(y)}" for x, y in pts)
        f.parts.append(f'<polyline class="data line {cls}" stroke="{stroke}" points="{path}"/>')
    caption = (
        f'<span class="key"><i style="background:{REFERENCE}"></i>reference</span>'
        f'<span class="key"><i style="background:{WINDOW}"></i>window</span>'
    )
    return (
        f'<figure class="plot"><figcaption>{escape(title)}</figcaption><svg class="chart ecdf" '
        f'data-points="{count}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img">{"".join(f.parts)}</svg><figcaption class="legend">{caption}</figcaption></figure>'
    )


@dataclass(frozen=True)
class Segment:
    """A span of a timeline lane: what an alias pointed at from ``start`` to ``end``."""

    start: datetime
    end: datetime
    label: str
    colour: str


def lanes(rows: Sequence[tuple[str, Sequence[Segment]]], *, width: int = 860, lane: int = 26) -> str:
    """One horizontal lane per alias, its segments coloured by version: "what served production at T"."""
    segments = [s for _, lane_segments in rows for s in lane_segments]
    if not segments:
        return '<p class="muted empty-chart">no alias moves yet</p>'
    t0 = min(s.start.timestamp() for s in segments)
    t1 = max(s.end.timestamp() for s in segments)
    height = lane * len(rows) + 28
    f = _Frame(width, height, t0, t1, 0.0, 1.0, left=90, top=4)
    for i, (name, lane_segments) in enumerate(rows):
        y = f.top + i * lane
        f.parts.append(
            f'<text class="tick" x="{f.left - 6}" y="{y + lane / 2 + 4}" text-anchor="end">{escape(name)}</text>'
        )
        for s in lane_segments:
            x0, x1 = f.x(s.start.timestamp()), f.x(s.end.timestamp())
            f.parts.append(
                f'<rect class="data segment" fill="{s.colour}" x="{_n(x0)}" y="{y + 3}" width="{_n(max(x1 - x0, 1.5))}" '
                f'height="{lane - 6}"><title>{escape(name)} → {escape(s.label)}: '
                f"{s.start:%Y-%m-%d %H:%M:%S} to {s.end:%Y-%m-%d %H:%M:%S} UTC</title></rect>"
            )
            if x1 - x0 > 24:
                f.parts.append(
                    f'<text class="seglabel" x="{_n(x0 + 4)}" y="{y + lane / 2 + 4}">{escape(s.label)}</text>'
                )
    for t, anchor in ((t0, "start"), (t1, "end")):
        text = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")
        f.parts.append(
            f'<text class="tick" x="{_n(f.x(t))}" y="{height - 6}" text-anchor="{anchor}">{text} UTC</text>'
        )
    return (
        f'<figure class="plot"><svg class="chart lanes" data-points="{len(segments)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">{"".join(f.parts)}</svg></figure>'
    )


def time_bars(series: Sequence[Series], *, y_label: str = "", width: int = 860, height: int = 200) -> str:
    """Counts per time bucket, one colour per series, stacked (dead letters by reason per hour)."""
    buckets = sorted({t for s in series for t, _ in s.points})
    if not buckets:
        return '<p class="muted empty-chart">no data yet</p>'
    totals = {t: sum(v or 0.0 for s in series for u, v in s.points if u == t) for t in buckets}
    f = _Frame(width, height, 0.0, float(len(buckets)), 0.0, max(totals.values()) or 1.0)
    f.t0, f.t1 = buckets[0].timestamp(), buckets[-1].timestamp() + 1
    _axes(f, y_label, time_axis=False)
    slot = (width - f.left - f.right) / len(buckets)
    base = dict.fromkeys(buckets, 0.0)
    count = 0
    for s in series:
        for t, v in s.points:
            if not v:
                continue
            i = buckets.index(t)
            y_top, y_bottom = f.y(base[t] + v), f.y(base[t])
            base[t] += v
            count += 1
            f.parts.append(
                f'<rect class="data bar" fill="{s.colour}" x="{_n(f.left + i * slot + 1)}" y="{_n(y_top)}" '
                f'width="{_n(max(slot - 2, 1))}" height="{_n(y_bottom - y_top)}"><title>{escape(s.name)} '
                f"{t:%m-%d %H:%M}: {v:g}</title></rect>"
            )
    for i, anchor in ((0, "start"), (len(buckets) - 1, "end")):
        f.parts.append(
            f'<text class="tick" x="{_n(f.left + (i + (1 if anchor == "end" else 0)) * slot)}" y="{height - 6}" '
            f'text-anchor="{anchor}">{buckets[i]:%m-%d %H:%M} UTC</text>'
        )
    legend = "".join(
        f'<span class="key"><i style="background:{s.colour}"></i>{escape(s.name)}</span>' for s in series
    )
    return (
        f'<figure class="plot"><svg class="chart" data-points="{count}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">{"".join(f.parts)}</svg>'
        f'<figcaption class="legend">{legend}</figcaption></figure>'
    )
