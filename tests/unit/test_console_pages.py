"""The web console on in-memory fakes: what each viewer sees, what they may do, and that it is escaped.

The console is built through the same ``bootstrap`` as in production, with fake registry and warehouse
ports; its queries must be those of docs/analytics.md word for word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.console.bootstrap import bootstrap
from services.console.domain import queries as q
from services.console.entrypoints.http import create_app
from services.console.errors import Forbidden, NotSignedIn
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(microsecond=0)
ROLES = {"r": ("rita", "reader"), "w": ("wes", "writer")}


class FakeRegistry:
    """Answers like the registry for one model with two versions; records the writes made through it."""

    def __init__(self, open_reads: bool = True) -> None:
        self.open_reads = open_reads
        self.production = 2
        self.writes: list[tuple[str, ...]] = []
        self.name = "churn<script>"

    def whoami(self, token: str) -> dict[str, str]:
        if not token:
            if not self.open_reads:
                raise NotSignedIn("this registry needs a bearer token")
            return {"name": "anonymous", "role": "reader"}
        if token not in ROLES:
            raise NotSignedIn("unknown token")
        name, role = ROLES[token]
        return {"name": name, "role": role}

    def models(self, token: str) -> list[dict[str, Any]]:
        self.whoami(token)
        return [self.model(self.name, token)]

    def model(self, name: str, token: str) -> dict[str, Any]:
        return {
            "name": self.name, "description": "d", "task_type": "binary_classification", "latest_version": 2,
            "aliases": {"production": self.production}, "created_at": NOW.isoformat(), "created_by": "ada",
        }  # fmt: skip

    def versions(self, name: str, token: str) -> list[dict[str, Any]]:
        return [
            {"model_name": self.name, "version": v, "status": "ready", "description": "",
             "artifact_uri": f"file:///a/{v}/model.joblib", "artifact_sha256": "ab" * 32, "artifact_size": 2048,
             "metrics": {"accuracy": 0.9}, "params": {}, "tags": {},
             "lineage": {"parent_version": v - 1 if v > 1 else None, "dataset_sha256": "cd" * 32},
             "has_reference_profile": True, "aliases": ["production"] if v == self.production else [],
             "created_at": NOW.isoformat(), "created_by": "trainer"}
            for v in (1, 2)
        ]  # fmt: skip

    def version(self, name: str, version: int, token: str) -> dict[str, Any]:
        return next(v for v in self.versions(name, token) if v["version"] == version)

    def history(self, name: str, token: str) -> list[dict[str, Any]]:
        return [
            {"alias": "production", "action": "set", "version": 1, "previous_version": None,
             "changed_at": (NOW - timedelta(hours=2)).isoformat(), "changed_by": "ada", "reason": "<b>first</b>"},
            {"alias": "production", "action": "moved", "version": 2, "previous_version": 1,
             "changed_at": (NOW - timedelta(hours=1)).isoformat(), "changed_by": "trainer", "reason": "retrained"},
        ]  # fmt: skip

    def audit(self, name: str, token: str, limit: int = 50) -> list[dict[str, Any]]:
        return []

    def reference_profile(self, name: str, version: int, token: str) -> dict[str, Any] | None:
        return {"features": {}}

    def set_alias(self, name: str, alias: str, version: int, reason: str, token: str) -> dict[str, Any]:
        self._write(token)
        self.writes.append(("set", alias, str(version), reason, token))
        return {"version": version}

    def rollback(self, name: str, alias: str, reason: str, token: str) -> dict[str, Any]:
        self._write(token)
        self.writes.append(("rollback", alias, reason, token))
        self.production = 1
        return {"version": 1}

    def _write(self, token: str) -> None:
        if ROLES.get(token, ("", "reader"))[1] == "reader":
            raise Forbidden("this needs the writer role")


class FakeWarehouse:
    """Rows for the window summary; every other query answers nothing (a fresh system)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.asked.append(sql.split("\n")[0])
        if sql is q.WINDOW_SUMMARY:
            now = datetime.now(
                UTC
            )  # the page judges health against the clock: the windows are recent when asked
            return [
                {"model_name": "churn<script>", "model_version": "2", "window_start": now - timedelta(minutes=i + 1),
                 "window_end": now - timedelta(minutes=i), "predictions": 100.0, "accuracy": 0.9 - i / 100,
                 "estimated_accuracy": None, "labelled": 90.0}
                for i in reversed(range(5))
            ]  # fmt: skip
        return []


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def app(registry: FakeRegistry) -> TestClient:
    wiring = bootstrap(Settings(), registry=registry, warehouse=FakeWarehouse())
    return TestClient(create_app(wiring.console, secure_cookies=wiring.secure_cookies))


def sign_in(client: TestClient, token: str) -> None:
    assert client.post("/login", data={"token": token}, follow_redirects=False).status_code == 303


def test_every_query_of_the_console_is_on_the_analytics_page_word_for_word() -> None:
    page = (ROOT / "docs" / "analytics.md").read_text()
    for sql in q.ALL:
        name = re.match(r"-- name: (\w+)", sql)
        assert name, sql
        assert f"```sql\n{sql}```" in page, f"{name.group(1)} differs from docs/analytics.md (or is missing)"


def test_models_page_shows_health_and_sparklines_escaped(app: TestClient) -> None:
    page = app.get("/").text
    assert 'data-status="ok"' in page and page.count('class="chart spark"') == 2
    assert "<script>" not in page.replace('<script src="/static/console.js" defer></script>', "")
    assert "churn&lt;script&gt;" in page


def test_a_reader_sees_no_action_buttons_and_a_writer_does(app: TestClient) -> None:
    sign_in(app, "r")
    assert "rollback-form" not in app.get("/models/churn").text
    sign_in(app, "w")
    page = app.get("/models/churn").text
    assert "rollback-form" in page and "promote-form" in page
    assert "&lt;b&gt;first&lt;/b&gt;" in page  # a reason is text, never markup


def test_a_rollback_needs_the_forms_csrf_token_and_a_writer(app: TestClient, registry: FakeRegistry) -> None:
    sign_in(app, "w")
    page = app.get("/models/churn").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf
    forged = app.post("/models/churn/aliases/production/rollback", data={"reason": "x", "csrf": "0" * 64})
    assert forged.status_code == 403 and registry.writes == []
    done = app.post(
        "/models/churn/aliases/production/rollback",
        data={"reason": "slow", "csrf": csrf.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303 and "rolled%20back%20to%20v1%20by%20wes" in done.headers["location"]
    assert registry.writes == [("rollback", "production", "slow", "w")]  # made with the viewer's own token


def test_a_reader_with_a_valid_csrf_token_still_cannot_act(app: TestClient, registry: FakeRegistry) -> None:
    sign_in(app, "r")
    page = app.get("/models/churn").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert csrf
    refused = app.post(
        "/models/churn/aliases/promote", data={"version": "1", "reason": "x", "csrf": csrf.group(1)}
    )
    assert refused.status_code == 403 and "writer" in refused.text and registry.writes == []


def test_closed_reads_send_the_viewer_to_sign_in() -> None:
    wiring = bootstrap(Settings(), registry=FakeRegistry(open_reads=False), warehouse=FakeWarehouse())
    client = TestClient(create_app(wiring.console))
    first = client.get("/models/churn/drift", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=%2Fmodels%2Fchurn%2Fdrift"
    bad = client.post("/login", data={"token": "nope"})
    assert bad.status_code == 401 and "does not accept" in bad.text


def test_cookies_are_secure_off_loopback_and_strict_always(registry: FakeRegistry) -> None:
    wiring = bootstrap(Settings(), registry=registry, warehouse=FakeWarehouse(), host="0.0.0.0")
    assert wiring.secure_cookies
    client = TestClient(create_app(wiring.console, secure_cookies=True), base_url="https://console.example")
    cookies = client.post("/login", data={"token": "r"}, follow_redirects=False).headers.get_list(
        "set-cookie"
    )
    assert len(cookies) == 2 and all(
        "HttpOnly" in c and "SameSite=strict" in c and "Secure" in c for c in cookies
    )


def test_pages_of_a_fresh_system_say_there_is_no_data_yet(app: TestClient) -> None:
    for path in ("/models/churn/drift", "/models/churn/training", "/dead-letters"):
        response = app.get(path)
        assert response.status_code == 200, path
        assert "no data yet" in response.text or "none yet" in response.text, path
    assert app.get("/static/console.js").headers["content-type"].startswith("text/javascript")
    assert app.get("/static/../bootstrap.py").status_code == 404


class EstimatingWarehouse(FakeWarehouse):
    """Windows whose labels have not arrived: accuracy unknown, estimated accuracy recorded by the monitor;
    the latest announcement is a performance drift of the serving version."""

    def rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows = super().rows(sql, params)
        if sql is q.WINDOW_SUMMARY:
            for i, row in enumerate(rows):
                row.update(accuracy=None, labelled=0.0, estimated_accuracy=0.8 - i / 100)
        if sql is q.LAST_DRIFT_ANNOUNCEMENT:
            return [{"model_name": "churn<script>", "event_type": "drift_detected", "model_version": "2",
                     "kinds": ["performance"], "announced_at": NOW}]  # fmt: skip
        return rows


def test_models_page_shows_estimated_accuracy_and_a_degraded_model(registry: FakeRegistry) -> None:
    wiring = bootstrap(Settings(), registry=registry, warehouse=EstimatingWarehouse())
    page = TestClient(create_app(wiring.console)).get("/").text
    assert 'data-status="degraded"' in page
    assert "estimated" in page and page.count('class="chart spark"') == 2  # traffic and estimated accuracy
    assert "0.76" in page  # the last window's estimate
