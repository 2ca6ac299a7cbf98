"""The run's report: one PNG of the main plot and a self-contained HTML page around it.

The plot has two panels on one time axis (seconds since the app's first request): accuracy (the app's
rolling accuracy coloured by the version that answered, the monitor's accuracy per window, the oracle) and
drift statistics (each feature's Wasserstein distance to the version's reference, in reference standard
deviations, per monitor window, with the alert threshold). Vertical lines mark the change point, the drift
alert, the promotion and the first answer of the new version.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.demo.app import Served
from driftloop.demo.observers import DriftStatistic, window_seen
from driftloop.demo.summary import Summary
from driftloop.demo.timeline import Entry, Step

ROLLING = 200
MIN_ROLLING = 50
"""A rolling accuracy is drawn once it averages this many answers (the first few are all noise)."""
MARKS = (
    (Step.DRIFT_BEGINS, "drift begins", "#d62728", ":"),
    (Step.DRIFT_DETECTED, "drift detected", "#ff7f0e", "--"),
    (Step.PROMOTED, "promoted", "#9467bd", "--"),
    (Step.SERVER_SWAPPED, "new version serving", "#2ca02c", "-"),
)
VERSION_COLOURS = ("#1f77b4", "#2ca02c", "#8c564b", "#e377c2", "#7f7f7f")


@dataclass(frozen=True)
class WindowRow:
    """A judged monitor window (``window_metrics``): version, span, predictions, accuracy once labelled."""

    version: str
    start: datetime
    end: datetime
    count: int
    accuracy: float | None


def _seconds(moment: datetime, origin: float) -> float:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.timestamp() - origin


def rolling_accuracy(served: Sequence[Served], width: int = ROLLING) -> list[float]:
    """Accuracy of the last ``width`` answers (fewer at the start), one value per answer."""
    out: list[float] = []
    correct = 0
    for i, s in enumerate(served):
        correct += s.correct
        if i >= width:
            correct -= served[i - width].correct
        out.append(correct / min(i + 1, width))
    return out


def label_rows(spans: Sequence[tuple[float, float]], gap: float = 0.0) -> list[int]:
    """The row of each label, given its horizontal extent (start, end), so that no two labels of one row
    overlap: each goes to the first row whose last label ends before it starts. Order is kept.

    >>> label_rows([(0, 5), (3, 8), (6, 9), (20, 25)])
    [0, 1, 0, 0]
    """
    ends: list[float] = []
    rows = []
    for start, end in spans:
        row = next((i for i, last in enumerate(ends) if start > last + gap), len(ends))
        if row == len(ends):
            ends.append(end)
        else:
            ends[row] = end
        rows.append(row)
    return rows


def accuracy_limits(values: Sequence[float]) -> tuple[float, float]:
    """The accuracy axis: 0.3 to 1.0 unless a value lies below, so no line runs off the panel.

    >>> accuracy_limits([0.5, 0.9]), accuracy_limits([0.12, 0.9])
    ((0.3, 1.0), (0.0, 1.0))
    """
    lowest = min(values, default=0.3)
    return (min(0.3, max(0.0, math.floor((lowest - 0.05) * 10) / 10)), 1.0)


def _mark_labels(fig: Any, ax: Any, marks: Sequence[tuple[float, str, str]]) -> None:
    """Each mark's label beside its vertical line at the top of ``ax``, staggered down where two would
    overlap (the promotion and the first answer of the new version are often a second apart)."""
    fig.canvas.draw()  # lay the figure out first: extents are measured where they will be drawn
    renderer = fig.canvas.get_renderer()
    texts = []
    for x, label, colour in sorted(marks):
        text = ax.annotate(
            label, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
            textcoords="offset points", va="top", ha="left", fontsize=8, color=colour,
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )  # fmt: skip
        text.set_in_layout(False)
        texts.append(text)
    extents = [t.get_window_extent(renderer) for t in texts]
    rows = label_rows([(e.x0, e.x1) for e in extents], gap=4.0)
    for text, extent, row in zip(texts, extents, rows, strict=True):
        text.set_position((3, -3 - row * (extent.height + 2) * 72 / fig.dpi))


def plot(
    served: Sequence[Served],
    windows: Sequence[WindowRow],
    statistics: Sequence[DriftStatistic],
    entries: Sequence[Entry],
    summary: Summary,
    threshold: float,
) -> bytes:
    """The main plot as PNG bytes: legends beside the panels, never over the lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    origin = served[0].at if served else 0.0
    fig, (acc_ax, drift_ax) = plt.subplots(
        2, 1, figsize=(14, 8), sharex=True, height_ratios=(3, 2), layout="constrained"
    )
    fig.suptitle("Driftloop closed loop: rainfall model under real drift")
    rolling = rolling_accuracy(served)
    versions = sorted({s.version for s in served})
    drawn: list[float] = []
    for i, version in enumerate(versions):
        points = [(s.at - origin, r) for n, (s, r) in enumerate(zip(served, rolling, strict=True))
                  if s.version == version and n + 1 >= MIN_ROLLING]  # fmt: skip
        drawn += [r for _, r in points]
        colour = VERSION_COLOURS[i % len(VERSION_COLOURS)]
        acc_ax.plot([x for x, _ in points], [r for _, r in points], color=colour, lw=1.5,
                    label=f"app: accuracy of the last {ROLLING} answers, v{version}")  # fmt: skip
    labelled = [w for w in windows if w.accuracy is not None and w.count > 0]
    if labelled:
        acc_ax.scatter(
            [(_seconds(w.start, origin) + _seconds(w.end, origin)) / 2 for w in labelled],
            [w.accuracy for w in labelled],
            marker="s",
            s=22,
            color="black",
            zorder=3,
            label="monitor: accuracy per window",
        )
    if summary.oracle_accuracy is not None and summary.promoted_version is not None:
        after = [s.at - origin for s in served if s.version != served[0].version]
        if after:
            acc_ax.hlines(summary.oracle_accuracy, after[0], after[-1], colors="grey", linestyles="dashdot",
                          label=f"oracle on the same rows ({summary.oracle_accuracy:.3f})")  # fmt: skip
    acc_ax.set_ylabel("accuracy")
    acc_ax.set_ylim(*accuracy_limits([*drawn, *(w.accuracy for w in labelled if w.accuracy is not None)]))
    acc_ax.grid(alpha=0.3)

    effects = [t for t in statistics if t.test == "wasserstein_norm"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, feature in enumerate(sorted({t.feature for t in effects})):
        for j, judged in enumerate(sorted({t.version for t in effects}, key=int)):
            mine = [t for t in effects if t.feature == feature and t.version == judged]
            xs = [(_seconds(t.start, origin) + _seconds(t.end, origin)) / 2 for t in mine]
            drift_ax.plot(
                xs,
                [max(t.statistic, 1e-3) for t in mine],
                marker="o",
                ms=3,
                lw=1,
                ls="-" if j == 0 else "--",
                color=colours[i % len(colours)],
                label=feature if j == 0 else None,
            )
    drift_ax.axhline(threshold, color="black", lw=1, ls="--", label=f"alert threshold ({threshold} sd)")
    drift_ax.set_title(
        "feature drift per monitor window (solid: the first version against its reference, "
        "dashed: the new version against its own)",
        fontsize=9,
    )
    drift_ax.set_yscale("log")
    drift_ax.set_ylabel("Wasserstein distance to\nthe version's reference (sd)")
    drift_ax.set_xlabel("seconds since the app's first request")
    drift_ax.grid(alpha=0.3, which="both")

    marks = []
    for step, label, colour, style in MARKS:
        entry = next((e for e in entries if e.step is step), None)
        if entry is None:
            continue
        for ax in (acc_ax, drift_ax):
            ax.axvline(entry.at - origin, color=colour, ls=style, lw=1.5)
        marks.append((entry.at - origin, label, colour))
    acc_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    drift_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, borderaxespad=0)
    _mark_labels(fig, acc_ax, marks)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def cell(value: Any) -> str:
    """A value as a table cell a user reads: mappings as ``key value`` pairs, sequences as lists.

    >>> cell({"rate": 40.0, "stream": range(0, 3), "labels": {"delay_s": 2}})
    'rate 40; stream 0-2; labels (delay_s 2)'
    >>> cell(["a", "b"]), cell(0.5), cell(None)
    ('a, b', '0.5', '')
    """
    if value is None:
        return ""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            text = cell(item)
            parts.append(f"{key} ({text})" if isinstance(item, dict) else f"{key} {text}")
        return "; ".join(parts)
    if isinstance(value, range):
        return f"{value.start:,}-{value.stop - 1:,}" if value.step == 1 else str(list(value))
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def window_rows(windows: Sequence[WindowRow], statistics: Sequence[DriftStatistic]) -> list[list[str]]:
    """The windows table: each window that saw predictions, with its drifted features and accuracy.

    A version's windows after it stopped serving hold no predictions and are left out.
    """
    tests: dict[tuple[str, datetime], list[DriftStatistic]] = {}
    for t in statistics:
        tests.setdefault((t.version, t.start), []).append(t)
    rows = []
    for w in windows:
        if w.count <= 0:
            continue
        seen = window_seen(
            w.version, w.start, w.end, w.count, w.accuracy, tests.get((w.version, w.start), [])
        )
        drifted = ", ".join(seen.drifted_features) + (" (outputs)" if seen.output_drifted else "")
        rows.append([
            f"v{w.version}", f"{w.start:%H:%M:%S}", f"{w.end:%H:%M:%S}", f"{w.count:,}",
            drifted.strip() or "none", "" if w.accuracy is None else f"{w.accuracy:.3f}",
        ])  # fmt: skip
    return rows


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mattering(summary: Summary) -> str:
    """The alert's drifted features ranked by importance x effect, and the share of importance that moved."""
    if not summary.ranked_features:
        return ""
    rows = [
        [f["feature"], "unknown" if f["importance"] is None else f"{f['importance']:.0%}", f"{f['effect']:.2f}",
         f"{f['score']:.2f}", "ignored (below min_importance_share)" if f["ignored"] else "counts"]
        for f in summary.ranked_features
    ]  # fmt: skip
    moved = summary.importance_share_drifted
    share = "unknown" if moved is None else f"{moved:.0%}"
    return f"""<h2>Which drift matters</h2>
<p>The first feature alert ranked its drifted features by importance (the feature's share of the model's
permutation importance, measured on held-out rows when the version was made) times effect (the drift test's
effect size over its threshold). The drifted features hold <b>{html.escape(share)}</b> of what the model
relies on.</p>
{_table(["feature", "importance", "effect", "score", "verdict"], rows)}"""


def page(png: bytes, summary: Summary, entries: Sequence[Entry], windows: Sequence[WindowRow],
         context: dict[str, Any], started_at: float,
         statistics: Sequence[DriftStatistic] = ()) -> str:  # fmt: skip
    """The HTML page: summary, the plot (inline), how to read it, the timeline and the windows."""
    image = base64.b64encode(png).decode()
    figures = [list(row) for row in summary.rows()]
    timeline = [
        [f"{e.at - started_at:.1f}s", e.step.value, e.text] for e in entries if e.step is not Step.TRAFFIC
    ]
    windows_table = window_rows(windows, statistics)
    facts = [[k, cell(v)] for k, v in context.items()]
    verdict = "the loop closed" if summary.loop_closed else "the loop did not close"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Driftloop demo report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 14px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} img {{ max-width: 100%; }} .verdict {{ font-size: 1.2em; }}
</style></head><body>
<h1>Driftloop closed-loop demo</h1>
<p class="verdict">Summary: <b>{html.escape(verdict)}</b>.</p>
{_table(["figure", "value"], figures)}
<h2>Accuracy and drift over time</h2>
<img alt="accuracy and drift statistics over time" src="data:image/png;base64,{image}">
<h2>How to read it</h2>
<ul>
<li><b>Top</b>: each coloured line is the accuracy of the last {ROLLING} answers the simulated app got from the
model server, coloured by the version that answered. Black squares are the monitor's accuracy per event-time
window (from ClickHouse <code>window_metrics</code>), once the labels arrived. The dash-dotted line is the
oracle: the same recipe trained on the other post-drift rows, scored on the rows the new version answered.</li>
<li><b>Bottom</b>: per feature and monitor window, the Wasserstein distance between the window and the
version's reference profile, in reference standard deviations (<code>drift_tests</code>, log scale). A feature
drifts when it is significant (KS, Benjamini-Hochberg) and above the dashed threshold; the model drifts when
3 of the last 3 windows do. After the promotion the new version is compared with its own reference.</li>
<li>Vertical lines: the documented change point reaching the app, the monitor's alert on
<code>drift-events</code>, the registry moving <code>production</code> (<code>model-events</code>), and the
first answer of the new version.</li>
</ul>
{_mattering(summary)}
<h2>Timeline</h2>
{_table(["at", "step", "what happened"], timeline)}
<h2>Monitor windows</h2>
{_table(["version", "start (UTC)", "end (UTC)", "predictions", "drifted features", "accuracy"], windows_table)}
<h2>Run</h2>
{_table(["", ""], facts)}
</body></html>
"""


def write_report(
    out_dir: Path,
    served: Sequence[Served],
    windows: Sequence[WindowRow],
    statistics: Sequence[DriftStatistic],
    entries: Sequence[Entry],
    summary: Summary,
    threshold: float,
    context: dict[str, Any],
    started_at: float,
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``accuracy-drift.png`` into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot(served, windows, statistics, entries, summary, threshold)
    png_path = out_dir / "accuracy-drift.png"
    png_path.write_bytes(png)
    html_path = out_dir / "report.html"
    html_path.write_text(page(png, summary, entries, windows, context, started_at, statistics))
    return html_path, png_path
