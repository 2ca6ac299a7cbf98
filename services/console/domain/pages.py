"""The console's pages as HTML, from the data ``service.Console`` gathers. Every value is escaped here.

Pages are whole documents; the part that live updates replace is ``<main id="live">`` (``static/console.js``
fetches the same URL again every ``console_refresh_seconds`` and swaps it in).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import quote

from services.console.domain import svg
from services.console.domain.session import Viewer

STATUS_CLASS = {"ok": "ok", "drifting": "warn", "degraded": "bad", "no traffic": "idle", "no profile": "idle"}


def e(value: Any) -> str:
    return escape("" if value is None else str(value))


def url(*parts: str, **query: str) -> str:
    path = "/" + "/".join(quote(str(p), safe="") for p in parts)
    if query:
        path += "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
    return path


def num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: ``—`` for none, a few significant digits otherwise.

    >>> num(None), num(0.123456), num(12), num(float("nan"))
    ('—', '0.123', '12', '—')
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.{digits}g}"
    return e(value)


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return e(value)


def size(n: Any) -> str:
    """Bytes in words.

    >>> size(512), size(2_500_000)
    ('512 B', '2.5 MB')
    """
    if not isinstance(n, int | float):
        return "—"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """Cells are HTML already (escape with :func:`e` before)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">none yet</td></tr>'
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def badge(status: str) -> str:
    return f'<span class="status {STATUS_CLASS.get(status, "idle")}" data-status="{e(status)}">{e(status)}</span>'


def layout(title: str, viewer: Viewer, body: str, *, refresh_s: float = 0.0, here: str = "") -> str:
    """A whole page: the navigation, who is signed in, and ``body`` inside the live-updated ``main``."""
    nav = "".join(
        f'<a href="{href}"{" class=here" if href == here else ""}>{label}</a>'
        for href, label in (("/", "Models"), ("/dead-letters", "Dead letters"))
    )
    who = (
        f'<span class="who">{e(viewer.name)} ({e(viewer.role)})</span>'
        f'<form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" '
        f'value="{e(viewer.csrf)}"><button type="submit">sign out</button></form>'
        if viewer.signed_in
        else f'<span class="who">{e(viewer.name)} ({e(viewer.role)})</span> <a href="/login">sign in</a>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} · Driftloop</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head>'
        f'<body data-refresh="{refresh_s:g}"><header><a class="brand" href="/">Driftloop</a>'
        f"<nav>{nav}</nav>{who}</header>"
        f'<main id="live"><h1>{e(title)}</h1>{body}</main>'
        '<footer class="muted">every number here is also a query in docs/analytics.md · '
        f'updated <span id="updated">{datetime.now(UTC):%H:%M:%S}</span> UTC</footer></body></html>'
    )


def login_page(message: str = "", next_url: str = "/") -> str:
    note = f'<p class="error">{e(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · Driftloop</title>'
        '<link rel="stylesheet" href="/static/console.css"></head><body><main class="login">'
        f"<h1>Driftloop console</h1>{note}"
        '<form method="post" action="/login"><label>Registry token '
        '<input type="password" name="token" autocomplete="off" required></label>'
        f'<input type="hidden" name="next" value="{e(next_url)}">'
        '<button type="submit">Sign in</button></form>'
        "<p class=muted>A token of <code>DRIFTLOOP_REGISTRY_TOKENS</code>; on one machine the local admin "
        "token is in <code>.driftloop/local-token</code>. Readers see every page; writers also get the "
        "promote and roll back buttons. The token is kept in an HttpOnly, SameSite=Strict cookie.</p>"
        "</main></body></html>"
    )


def error_page(title: str, message: str, viewer: Viewer) -> str:
    return layout(title, viewer, f'<p class="error">{e(message)}</p>')


# -- Models ---------------------------------------------------------------------------------------------


def models_page(models: Sequence[Any], viewer: Viewer, refresh_s: float) -> str:
    rows = []
    for m in models:
        traffic = [w["predictions"] for w in m.windows]
        accuracy = [w["accuracy"] for w in m.windows]
        estimated = [w["estimated_accuracy"] for w in m.windows]
        acc_cell = svg.sparkline(accuracy, label="accuracy") + f" {num(m.last_accuracy)}"
        if any(v is not None for v in estimated):
            acc_cell += f'<br><span class="muted">estimated</span> {svg.sparkline(estimated, label="estimated accuracy")} {num(m.last_estimated)}'
        rows.append(
            [
                f'<a class="model" href="{url("models", m.name)}">{e(m.name)}</a>',
                e(m.production) if m.production is not None else '<span class="muted">none</span>',
                badge(m.status),
                svg.sparkline(traffic, label="predictions per window")
                + f" {num(traffic[-1] if traffic else None)}",
                acc_cell,
                " ".join(f"{e(a)}→v{e(v)}" for a, v in sorted(m.aliases.items())),
                f'<a href="{url("models", m.name, "drift")}">drift</a> · '
                f'<a href="{url("models", m.name, "training")}">training runs</a>',
            ]
        )
    body = (
        '<p class="muted">Health is the last window\'s: <b>ok</b>, <b>drifting</b> (inputs or outputs moved), '
        "<b>degraded</b> (accuracy fell), <b>no traffic</b>, <b>no profile</b> (the production version has no "
        "reference to judge against). Sparklines: the last day, one point per monitor window.</p>"
        + table(
            ["model", "production", "health", "predictions / window", "accuracy", "aliases", ""],
            rows,
            "models",
        )
    )
    return layout("Models", viewer, body, refresh_s=refresh_s, here="/")


# -- A model --------------------------------------------------------------------------------------------


def _lineage(v: dict[str, Any]) -> str:
    lin = v.get("lineage") or {}
    parts = []
    for key, label in (
        ("parent_version", "parent"),
        ("drift_event_id", "drift event"),
        ("training_run_id", "training run"),
        ("dataset_uri", "data snapshot"),
        ("dataset_sha256", "data sha256"),
        ("data_start", "data from"),
        ("data_end", "data to"),
        ("code_version", "code"),
        ("dataset_query", "query"),
    ):
        value = lin.get(key)
        if value in (None, ""):
            continue
        if key == "drift_event_id":
            text = f'<a href="{url("models", v["model_name"], "drift", event=str(value))}">{e(str(value)[:8])}</a>'
        elif key == "dataset_uri":
            text = f'<code title="{e(value)}">{e(_tail(str(value)))}</code>'
        elif key == "training_run_id":
            text = f'<code title="{e(value)}">{e(str(value)[:8])}</code>'
        elif key == "dataset_sha256":
            text = f'<code title="{e(value)}">{e(str(value)[:12])}</code>'
        elif key == "dataset_query":
            text = f"<details><summary>SQL</summary><pre>{e(value)}</pre></details>"
        elif key == "parent_version":
            text = f"v{e(value)}"
        elif key in ("data_start", "data_end"):
            text = when(_dt(value))
        else:
            text = e(value)
        parts.append(f"<span class=kv><b>{label}</b> {text}</span>")
    return " ".join(parts) or '<span class="muted">registered by hand</span>'


def _alias_segments(history: Sequence[dict[str, Any]], now: datetime) -> list[tuple[str, list[svg.Segment]]]:
    lanes: dict[str, list[svg.Segment]] = {}
    current: dict[str, tuple[datetime, int | None]] = {}
    for h in history:
        alias, at = h["alias"], h["changed_at"]
        if alias in current:
            start, version = current[alias]
            if version is not None:
                lanes.setdefault(alias, []).append(
                    svg.Segment(start, at, f"v{version}", svg.colour(version - 1))
                )
        current[alias] = (at, h["version"])
    for alias, (start, version) in current.items():
        if version is not None:
            lanes.setdefault(alias, []).append(
                svg.Segment(start, now, f"v{version}", svg.colour(version - 1))
            )
    order = sorted(lanes, key=lambda a: (a != "production", a))
    return [(a, lanes[a]) for a in order]


def _actions(model: dict[str, Any], versions: Sequence[dict[str, Any]], viewer: Viewer) -> str:
    if not viewer.may_write:
        return ""
    name = model["name"]
    ready = [v["version"] for v in versions if v["status"] == "ready"]
    options = "".join(f'<option value="{v}">v{v}</option>' for v in ready)
    csrf = f'<input type="hidden" name="csrf" value="{e(viewer.csrf)}">'
    rollback = ""
    if "production" in model["aliases"]:
        rollback = (
            f'<form method="post" action="{url("models", name, "aliases", "production", "rollback")}" '
            f'class="action" id="rollback-form">{csrf}<b>Roll back production</b> '
            f"(now v{e(model['aliases']['production'])}) to the version before "
            '<input name="reason" placeholder="reason (kept in the history)" maxlength="2000" required> '
            '<button type="submit" class="danger" id="rollback">Roll back</button></form>'
        )
    promote = (
        f'<form method="post" action="{url("models", name, "aliases", "promote")}" class="action" '
        f'id="promote-form">{csrf}<b>Point</b> <input name="alias" value="production" size="10" required> '
        f'<b>at</b> <select name="version">{options}</select> '
        '<input name="reason" placeholder="reason (kept in the history)" maxlength="2000" required> '
        '<button type="submit" id="promote">Promote</button></form>'
    )
    return (
        f'<section class="actions"><h2>Act</h2><p class="muted">As {e(viewer.name)} ({e(viewer.role)}), '
        "through the registry: audited like any write.</p>"
        f"{rollback}{promote if ready else ''}</section>"
    )


VERSIONS_SHOWN = 100
"""The model page lists the newest versions and every version an alias points at; ``?versions=all`` the rest."""


def model_page(
    data: dict[str, Any], viewer: Viewer, refresh_s: float, notice: str = "", all_versions: bool = False
) -> str:
    model, versions, history, audit = data["model"], data["versions"], data["history"], data["audit"]
    runs = data["runs"]
    name = model["name"]
    note = f'<p class="notice" id="notice">{e(notice)}</p>' if notice else ""
    head = (
        f'<p><a href="{url("models", name, "drift")}">drift</a> · '
        f'<a href="{url("models", name, "training")}">training runs</a> · '
        f"{e(model['task_type'])} · {e(model['description'])} · created by {e(model['created_by'])} "
        f"{when(_dt(model['created_at']))}</p>"
        + "<p>"
        + " ".join(
            f'<span class="alias">{e(a)} → v{e(v)}</span>' for a, v in sorted(model["aliases"].items())
        )
        + "</p>"
    )
    metric_names = sorted({k for v in versions for k in v["metrics"]})[:6]
    shown = versions
    if not all_versions and len(versions) > VERSIONS_SHOWN:
        shown = [v for i, v in enumerate(versions) if i < VERSIONS_SHOWN or v["aliases"]]
    more = ""
    if len(shown) < len(versions):
        more = f' <a class="more" href="{url("models", name, versions="all")}">show all {len(versions):,}</a>'
    version_rows = []
    for v in shown:
        run = runs.get(str((v.get("lineage") or {}).get("training_run_id")))
        version_rows.append(
            [
                f"<b>v{e(v['version'])}</b>",
                e(v["status"]),
                " ".join(f'<span class="alias">{e(a)}</span>' for a in v["aliases"]),
                *[num(v["metrics"].get(k)) for k in metric_names],
                _lineage(v),
                f'<code title="{e(v["artifact_uri"])}">{e(v["artifact_uri"].rsplit("/", 1)[-1])}</code><br>'
                f'{size(v["artifact_size"])} · <code title="{e(v["artifact_sha256"])}">'
                f"{e(v['artifact_sha256'][:12])}</code>",
                ("yes" if v["has_reference_profile"] else '<span class="muted">no</span>'),
                f"{when(_dt(v['created_at']))}<br>{e(v['created_by'])}"
                + (f"<br>run {e(run['status'])}" if run else ""),
            ]
        )
    segments = _alias_segments(history, data["now"])
    history_rows = [
        [when(h["changed_at"]), e(h["alias"]), e(h["action"]),
         f"v{e(h['previous_version'])}" if h["previous_version"] else "—",
         f"v{e(h['version'])}" if h["version"] else "—", e(h["changed_by"]), e(h["reason"])]
        for h in reversed(history)
    ]  # fmt: skip
    audit_rows = [
        [when(_dt(a["at"])), e(a["actor"]), e(a["role"]), e(a["action"]), e(a["target"]),
         f"<code>{e(_short(a['before']))}</code> → <code>{e(_short(a['after']))}</code>"]
        for a in audit
    ]  # fmt: skip
    body = (
        note
        + head
        + _actions(model, versions, viewer)
        + '<h2>Alias history</h2><p class="muted">What each alias pointed at over time; hover a span for its '
        'times ("what served production at T").</p>'
        + svg.lanes(segments)
        + table(["when (UTC)", "alias", "action", "from", "to", "by", "reason"], history_rows, "history")
        + f"<h2>Versions ({len(shown):,} of {len(versions):,}){more}</h2>"
        + table(
            ["version", "status", "aliases", *metric_names, "lineage", "artifact", "profile", "registered"],
            version_rows,
            "versions",
        )
        + "<h2>Audit log</h2>"
        + (
            table(["when (UTC)", "actor", "role", "action", "target", "change"], audit_rows, "audit")
            if audit_rows or data["audit"] == []
            else ""
        )
    )
    return layout(f"Model {name}", viewer, body, refresh_s=refresh_s)


def _tail(uri: str, most: int = 28) -> str:
    """The end of a long URI (the file name), the whole of it on hover.

    >>> _tail("file:///data/artifacts/datasets/61/616f1d50034dd971a617d2f87a7712f1.parquet")
    '…971a617d2f87a7712f1.parquet'
    >>> _tail("s3://bucket/churn/3.parquet")
    '3.parquet'
    """
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return name if len(name) <= most else "…" + name[-(most - 1) :]


def _dt(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _short(value: Any, most: int = 80) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= most else text[: most - 1] + "…"


# -- Drift ----------------------------------------------------------------------------------------------


def _marks(history: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]) -> list[svg.Mark]:
    marks = [
        svg.Mark(h["changed_at"], f"alias {h['action']}: {h['alias']} → v{h['version']}", "#9467bd")
        for h in history
        if h["alias"] == "production"
    ]
    marks += [
        svg.Mark(
            ev["occurred_at"],
            f"drift detected: {', '.join(ev['drifted_features']) or 'performance'}",
            "#ff7f0e",
        )
        for ev in events
        if ev["event_type"] == "drift_detected"
    ]
    marks += [
        svg.Mark(ev["occurred_at"], "drift recovered", "#2ca02c")
        for ev in events
        if ev["event_type"] == "drift_recovered"
    ]
    return marks


def _by_version(windows: Sequence[dict[str, Any]], key: str) -> list[svg.Series]:
    """One line per version through its own windows, broken where another version answered (one pass)."""
    points: dict[str, list[tuple[datetime, float | None]]] = {}
    previous = None
    for w in windows:
        version = str(w["model_version"])
        line = points.setdefault(version, [])
        if previous is not None and previous != version and line:
            line.append((w["window_start"], None))  # the version was away meanwhile: no line across
        line.append((w["window_start"], w[key]))
        previous = version
    ordered = sorted(points, key=lambda v: (len(v), v))
    return [
        svg.Series(f"v{v}", points[v], svg.colour(int(v) - 1 if v.isdigit() else i))
        for i, v in enumerate(ordered)
    ]


def drift_page(data: dict[str, Any], viewer: Viewer, refresh_s: float) -> str:
    model, windows, events, history = data["model"], data["windows"], data["events"], data["history"]
    name = model["name"]
    marks = _marks(history, events)
    accuracy = _by_version(windows, "accuracy")
    if any(w["estimated_accuracy"] is not None for w in windows):
        accuracy.append(
            svg.Series(
                "estimated", [(w["window_start"], w["estimated_accuracy"]) for w in windows], "#bcbd22"
            )
        )
    event_rows = [
        [when(ev["occurred_at"]),
         f'<a href="{url("models", name, "drift", event=str(ev["event_id"]))}">{e(ev["event_type"])}</a>',
         f"v{e(ev['model_version'])}", e(", ".join(ev["kinds"])), num(ev["severity"]),
         e(", ".join(ev["drifted_features"])), f"{when(ev['window_start'])} to {when(ev['window_end'])[11:]}"]
        for ev in events[:50]
    ]  # fmt: skip
    chosen = data["event"]
    detail = ""
    if chosen is not None:
        evidence_rows = [
            [e(r["feature"]), e(r["test"]), num(r["statistic"]), num(r["p_value"]), num(r["effect_size"]),
             num(r["threshold"]),
             ('<span class="status bad">drifted</span>' if r.get("drifted")
              else '<span class="status ok">held</span>'),
             e(r["reference_size"]), e(r["current_size"])]
            for r in data["evidence"]
        ]  # fmt: skip
        plots = []
        for p in data["plots"]:
            title = f"{p['feature']}: window ({p['window_values']} values) vs reference"
            charts = svg.compare_bars(
                p["bins"], p["reference"], p["window"], title=title + " · shares per bin"
            )
            if p["kind"] == "numeric":
                charts += svg.ecdf(p["reference_quantiles"], p["window_quantiles"], title=title + " · ECDF")
            plots.append(f'<div class="feature-plots" data-feature="{e(p["feature"])}">{charts}</div>')
        detail = (
            f'<section id="event"><h2>Drift event {e(str(chosen["event_id"])[:8])}: {e(chosen["event_type"])} '
            f"on v{e(chosen['model_version'])} at {when(chosen['occurred_at'])} UTC</h2>"
            f"<p>Window {when(chosen['window_start'])} to {when(chosen['window_end'])} UTC, kinds "
            f"{e(', '.join(chosen['kinds']) or '—')}, severity {num(chosen['severity'])}.</p>"
            + table(
                [
                    "feature",
                    "test",
                    "statistic",
                    "p-value",
                    "effect",
                    "threshold",
                    "verdict",
                    "reference n",
                    "window n",
                ],
                evidence_rows,
                "evidence",
            )
            + "".join(plots)
            + "</section>"
        )
    traffic = [svg.Series("predictions per window", [(w["window_start"], w["predictions"]) for w in windows])]
    body = (
        f'<p><a href="{url("models", name)}">model {e(name)}</a> · '
        f'<a href="{url("models", name, "training")}">training runs</a> · the last 7 days, '
        f"{len(windows)} windows, {len(events)} drift announcements</p>"
        "<h2>Accuracy over time</h2><p class=muted>Per monitor window, coloured by the version that "
        "answered; vertical lines: production alias moves (purple), drift detected (orange), recovered (green).</p>"
        + svg.time_chart(accuracy, marks, y_label="accuracy", css_class="accuracy")
        + "<h2>Windows and drift events</h2>"
        + svg.time_chart(traffic, marks, y_label="predictions", height=160, css_class="traffic")
        + table(
            ["when (UTC)", "event", "version", "kinds", "severity", "features", "window"],
            event_rows,
            "events",
        )
        + detail
    )
    return layout(f"Drift of {name}", viewer, body, refresh_s=refresh_s)


# -- Training runs ---------------------------------------------------------------------------------------


def training_page(data: dict[str, Any], viewer: Viewer, refresh_s: float) -> str:
    model, runs, versions = data["model"], data["runs"], data["versions"]
    name = model["name"]
    rows = []
    for r in runs:
        version = versions.get(r["model_version"]) if r["model_version"] is not None else None
        lineage = (version or {}).get("lineage") or {}
        window = (
            f"{e(str(lineage.get('data_start', ''))[:19])} to {e(str(lineage.get('data_end', ''))[:19])}"
            if lineage.get("data_start")
            else '<span class="muted">—</span>'
        )
        trigger = e(r["reason"])
        if r["trigger_event_id"]:
            trigger += (
                f' <a href="{url("models", name, "drift", event=str(r["trigger_event_id"]))}">event</a>'
            )
        score = (
            f"{num(r['challenger_score'])} vs {num(r['champion_score'])}"
            if r["challenger_score"] is not None
            else "—"
        )
        decision = (
            '<span class="status ok">promoted</span>'
            if r["promoted"]
            else '<span class="status idle">not promoted</span>'
        )
        rows.append(
            [
                when(r["started_at"]),
                trigger,
                window,
                f"{e(r['status'])}" + (f" · v{e(r['model_version'])}" if r["model_version"] else ""),
                f"{e(r['metric'])}: {score}",
                f"{decision}<br><small>{e(r['detail'])}</small>",
                f"{num(r['wall_s'])} s wall · {num(r['cpu_s'])} s CPU · {num(r['peak_memory_mb'])} MB · "
                f"{e(r['rows'])} rows · {size(r['bytes_read'])} read · {size(r['artifact_bytes'])} written",
            ]
        )
    body = (
        f'<p><a href="{url("models", name)}">model {e(name)}</a> · <a href="{url("models", name, "drift")}">drift</a>'
        f" · the last {len(runs)} runs, newest first</p>"
        + table(
            [
                "started (UTC)",
                "trigger",
                "data window",
                "outcome",
                "challenger vs champion",
                "gate decision",
                "cost",
            ],
            rows,
            "runs",
        )
    )
    return layout(f"Training runs of {name}", viewer, body, refresh_s=refresh_s)


# -- Dead letters ----------------------------------------------------------------------------------------


def dead_letters_page(data: dict[str, Any], viewer: Viewer, refresh_s: float) -> str:
    reasons = sorted({r["reason"] for r in data["periods"]})
    counts = {(r["period"], r["reason"]): float(r["dead_letters"]) for r in data["periods"]}
    periods = _every_period([r["period"] for r in data["periods"]], timedelta(minutes=5))
    series = [
        svg.Series(
            reason,
            [(t, counts.get((t, reason), 0.0)) for t in periods],
            svg.colour(i),
        )
        for i, reason in enumerate(reasons)
    ]
    total = sum(r["dead_letters"] for r in data["periods"])
    sample_rows = [
        [when(s["occurred_at"]), e(s["model_name"]), e(s["source"]), e(s["reason"]), e(s["detail"]),
         f"<code>{e(_original(s['original']))}</code>"]
        for s in data["samples"]
    ]  # fmt: skip
    body = (
        f"<p>{total} dead letters in the last day, by reason per five minutes. Each keeps its original bytes "
        "(<code>dead_letters.original</code>).</p>"
        + svg.time_bars(series, y_label="dead letters")
        + "<h2>Latest originals</h2>"
        + table(
            ["when (UTC)", "model", "source", "reason", "detail", "original (first 300 bytes)"],
            sample_rows,
            "samples",
        )
    )
    return layout("Dead letters", viewer, body, refresh_s=refresh_s, here="/dead-letters")


def _original(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value)
    return text if len(text) <= 300 else text[:300] + "…"


def _every_period(seen: Sequence[datetime], step: timedelta) -> list[datetime]:
    """Every period from the first seen to the last, so quiet periods show as gaps on the time axis."""
    if not seen:
        return []
    out: list[datetime] = []
    at, last = min(seen), max(seen)
    while at <= last and len(out) < 2000:
        out.append(at)
        at += step
    return out
