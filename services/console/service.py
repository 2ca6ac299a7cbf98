"""The web console: gathers what a page shows from the registry (as the viewer) and ClickHouse.

Its two ports are small protocols, so unit tests drive it with in-memory fakes; ``domain/pages.py``
turns what it gathers into HTML.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from services.console.domain import queries as q
from services.console.domain.health import LastEvent, LastWindow, health
from services.console.domain.session import Viewer, csrf_token
from services.console.errors import ConsoleError, NotFound, NotSignedIn

DAY = timedelta(days=1)
PRODUCTION = "production"


class RegistryPort(Protocol):
    def whoami(self, token: str) -> dict[str, str]: ...
    def models(self, token: str) -> list[dict[str, Any]]: ...
    def model(self, name: str, token: str) -> dict[str, Any]: ...
    def versions(self, name: str, token: str) -> list[dict[str, Any]]: ...
    def version(self, name: str, version: int, token: str) -> dict[str, Any]: ...
    def history(self, name: str, token: str) -> list[dict[str, Any]]: ...
    def audit(self, name: str, token: str, limit: int = 50) -> list[dict[str, Any]]: ...
    def reference_profile(self, name: str, version: int, token: str) -> dict[str, Any] | None: ...
    def set_alias(self, name: str, alias: str, version: int, reason: str, token: str) -> dict[str, Any]: ...
    def rollback(self, name: str, alias: str, reason: str, token: str) -> dict[str, Any]: ...


class WarehousePort(Protocol):
    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]: ...


@dataclass
class ModelSummary:
    """One line of the Models page."""

    name: str
    production: int | None
    aliases: dict[str, int]
    latest_version: int
    status: str
    windows: list[dict[str, Any]] = field(default_factory=list)
    last_accuracy: float | None = None
    last_estimated: float | None = None


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = utc(value)
    return rows


class Console:
    """What each page needs, read for one viewer; every registry call carries the viewer's token."""

    def __init__(
        self,
        registry: RegistryPort,
        warehouse: WarehousePort,
        *,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.warehouse = warehouse
        self.refresh_s = refresh_s
        self.clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- who ----------------------------------------------------------------------------------------------

    def viewer(self, token: str, nonce: str) -> Viewer:
        """The viewer behind a token (or an anonymous one): :class:`NotSignedIn` when the registry wants one."""
        who = self.registry.whoami(token)
        return Viewer(who["name"], who["role"], token, csrf_token(token, nonce) if token and nonce else "")

    # -- pages --------------------------------------------------------------------------------------------

    def models(self, viewer: Viewer) -> list[ModelSummary]:
        models = self.registry.models(viewer.token)
        now = self.now()
        windows = self._windows("", now - DAY, now + timedelta(minutes=5))
        events = {r["model_name"]: r for r in self._rows(q.LAST_DRIFT_ANNOUNCEMENT, {})}
        by_model: dict[str, list[dict[str, Any]]] = {}
        for w in windows:
            by_model.setdefault(w["model_name"], []).append(w)
        out = []
        for m in models:
            production = m["aliases"].get(PRODUCTION)
            mine = _per_window(by_model.get(m["name"], []))
            last = mine[-1] if mine else None
            has_profile = True
            if production is not None:
                has_profile = bool(
                    self.registry.version(m["name"], production, viewer.token)["has_reference_profile"]
                )
            event = events.get(m["name"])
            status = health(
                LastWindow(
                    last["model_version"], last["window_start"], last["window_end"], last["predictions"]
                )
                if last
                else None,
                LastEvent(event["event_type"], event["model_version"], tuple(event["kinds"]))
                if event
                else None,
                serving=str(production) if production is not None else None,
                has_profile=has_profile,
                now=now,
            )
            accuracies = [w["accuracy"] for w in mine if w["accuracy"] is not None]
            estimates = [w["estimated_accuracy"] for w in mine if w["estimated_accuracy"] is not None]
            out.append(
                ModelSummary(
                    m["name"],
                    production,
                    dict(m["aliases"]),
                    m["latest_version"],
                    status,
                    mine,
                    accuracies[-1] if accuracies else None,
                    estimates[-1] if estimates else None,
                )
            )
        return out

    def model(self, name: str, viewer: Viewer) -> dict[str, Any]:
        model = self.registry.model(name, viewer.token)
        versions = self.registry.versions(name, viewer.token)
        versions.sort(key=lambda v: v["version"], reverse=True)
        history = self.registry.history(name, viewer.token)
        for h in history:
            h["changed_at"] = utc(datetime.fromisoformat(h["changed_at"]))
        try:
            audit = self.registry.audit(name, viewer.token, 30)
        except (NotSignedIn, ConsoleError):
            audit = []
        runs = {str(r["run_id"]): r for r in self._rows(q.TRAINING_RUNS, {"model": name})}
        return {
            "model": model,
            "versions": versions,
            "history": history,
            "audit": audit,
            "runs": runs,
            "now": self.now(),
        }

    def drift(self, name: str, viewer: Viewer, event_id: str | None = None) -> dict[str, Any]:
        model = self.registry.model(name, viewer.token)
        now = self.now()
        start = now - 7 * DAY
        windows = _per_window(self._windows(name, start, now + timedelta(minutes=5)))
        events = self._rows(
            q.DRIFT_EVENTS, {"model": name, "start": start, "end": now + timedelta(minutes=5)}
        )
        history = self.registry.history(name, viewer.token)
        for h in history:
            h["changed_at"] = utc(datetime.fromisoformat(h["changed_at"]))
        detected = [e for e in events if e["event_type"] == "drift_detected"]
        chosen = None
        if event_id:
            chosen = next((e for e in events if str(e["event_id"]) == event_id), None)
            if chosen is None:
                raise NotFound(f"no drift event {event_id} of model {name} in the last 7 days")
        elif detected:
            chosen = detected[0]
        evidence: list[dict[str, Any]] = []
        plots: list[dict[str, Any]] = []
        if chosen is not None:
            evidence = self._rows(
                q.DRIFT_EVENT_EVIDENCE, {"model": name, "event_id": str(chosen["event_id"])}
            )
            evidence = [e for e in evidence if e["feature"] is not None]
            # an announcement may span the windows that confirmed it: plot its last one, as its tests saw it
            last = next((w for w in windows if w["window_end"] == chosen["window_end"]), None)
            start = last["window_start"] if last is not None else chosen["window_start"]
            plots = self._distributions(name, {**chosen, "window_start": start}, viewer)
        return {
            "model": model,
            "windows": windows,
            "events": events,
            "history": history,
            "event": chosen,
            "evidence": evidence,
            "plots": plots,
            "now": now,
        }

    def training(self, name: str, viewer: Viewer) -> dict[str, Any]:
        model = self.registry.model(name, viewer.token)
        versions = {v["version"]: v for v in self.registry.versions(name, viewer.token)}
        runs = self._rows(q.TRAINING_RUNS, {"model": name})
        return {"model": model, "runs": runs, "versions": versions}

    def dead_letters(self, viewer: Viewer) -> dict[str, Any]:
        self.registry.models(viewer.token)  # the registry's read policy decides who sees the loop's data
        now = self.now()
        span = {"start": now - DAY, "end": now + timedelta(minutes=5)}
        return {
            "periods": self._rows(q.DEAD_LETTERS_BY_PERIOD, span),
            "samples": self._rows(q.DEAD_LETTER_SAMPLES, span),
        }

    # -- actions ------------------------------------------------------------------------------------------

    def rollback(self, name: str, alias: str, reason: str, viewer: Viewer) -> dict[str, Any]:
        return self.registry.rollback(name, alias, reason, viewer.token)

    def promote(self, name: str, alias: str, version: int, reason: str, viewer: Viewer) -> dict[str, Any]:
        return self.registry.set_alias(name, alias, version, reason, viewer.token)

    # -- helpers ------------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return _clean(self.warehouse.rows(sql, params))

    def _windows(self, model: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return self._rows(q.WINDOW_SUMMARY, {"model": model, "start": start, "end": end})

    def _distributions(self, name: str, event: dict[str, Any], viewer: Viewer) -> list[dict[str, Any]]:
        """Window against reference for each drifted feature of ``event`` (its version's profile)."""
        features = [f for f in event["drifted_features"] if f and not f.startswith("__")]
        if not features or not str(event["model_version"]).isdigit():
            return []
        profile = self.registry.reference_profile(name, int(event["model_version"]), viewer.token)
        if profile is None:
            return []
        span = {
            "model": name,
            "version": str(event["model_version"]),
            "start": event["window_start"],
            "end": event["window_end"],
        }
        plots = []
        for feature in features[:12]:
            ref = profile["features"].get(feature)
            if ref is None:
                continue
            if ref["kind"] == "numeric":
                edges = list(ref["bin_edges"])
                counts = {
                    r["bin"]: r["values"]
                    for r in self._rows(q.WINDOW_FEATURE_BINS, {**span, "feature": feature, "edges": edges})
                }
                total = sum(counts.values()) or 1
                quantiles = self._rows(q.WINDOW_FEATURE_QUANTILES, {**span, "feature": feature})
                sketch = list(ref["sketch"])
                step = max(len(sketch) // 100, 1)
                plots.append(
                    {
                        "feature": feature,
                        "kind": "numeric",
                        "bins": _bin_labels(edges),
                        "reference": list(ref["bin_fractions"]),
                        "window": [counts.get(i, 0) / total for i in range(len(edges) + 1)],
                        "reference_quantiles": [*sketch[::step], sketch[-1]] if sketch else [],
                        "window_quantiles": list(quantiles[0]["quantiles"])
                        if quantiles and quantiles[0]["values"]
                        else [],
                        "window_values": total if counts else 0,
                    }
                )
            else:
                rows = self._rows(q.WINDOW_CATEGORY_COUNTS, {**span, "feature": feature})
                total = sum(r["values"] for r in rows) or 1
                window = {str(r["category"]): r["values"] / total for r in rows}
                frequencies = dict(ref["frequencies"])
                labels = sorted(
                    set(frequencies) | set(window),
                    key=lambda c: -max(frequencies.get(c, 0), window.get(c, 0)),
                )
                labels = labels[:16]
                plots.append(
                    {
                        "feature": feature,
                        "kind": "categorical",
                        "bins": labels,
                        "reference": [frequencies.get(c, 0.0) for c in labels],
                        "window": [window.get(c, 0.0) for c in labels],
                        "window_values": total if rows else 0,
                    }
                )
        return plots


def _bin_labels(edges: list[float]) -> list[str]:
    """PSI bins as text: the outer ones open.

    >>> _bin_labels([1.0, 2.5])
    ['<1', '1-2.5', '≥2.5']
    """
    if not edges:
        return ["all"]
    inner = [f"{a:.3g}-{b:.3g}" for a, b in itertools.pairwise(edges)]
    return [f"<{edges[0]:.3g}", *inner, f"≥{edges[-1]:.3g}"]


def _per_window(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per window of one model: predictions summed over versions (a swap mid-window), accuracy
    weighted by labelled predictions, the version that answered most."""
    merged: dict[datetime, dict[str, Any]] = {}
    for r in rows:
        w = merged.get(r["window_start"])
        if w is None:
            merged[r["window_start"]] = {**r, "_weight": r["predictions"]}
            continue
        for key in ("accuracy", "estimated_accuracy"):
            if r[key] is not None:
                if w[key] is None or not w["labelled"]:
                    w[key] = r[key]
                elif r["labelled"]:
                    w[key] = (w[key] * w["labelled"] + r[key] * r["labelled"]) / (
                        w["labelled"] + r["labelled"]
                    )
        if r["predictions"] > w["_weight"]:
            w["model_version"], w["_weight"] = r["model_version"], r["predictions"]
        w["predictions"] += r["predictions"]
        w["labelled"] += r["labelled"]
    return [merged[k] for k in sorted(merged)]
