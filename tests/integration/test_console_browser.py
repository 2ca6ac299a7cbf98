"""The web console in a real headless Chromium, against a real registry, ClickHouse server and console.

One system for the module: a registry process (reader, writer, admin and trainer tokens), the embedded
ClickHouse server with a seeded loop (windows, a drift alert on v1 with shifted predictions, a promoted
retraining, dead letters), and ``python -m services.console``. Chromium is Debian's (deploy/bootstrap.sh
installs it), driven by Playwright; nothing is downloaded.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from driftloop.bench.console import SeededLoop, console_system, seed_registry, seed_warehouse
from tests.fixtures.clickhouse import ClickHouseServer, random_database

pytestmark = pytest.mark.integration

VERSIONS = 3


@pytest.fixture(scope="module")
def system(
    clickhouse_server: ClickHouseServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    import clickhouse_connect

    tmp = tmp_path_factory.mktemp("console")
    database = random_database()
    admin = clickhouse_connect.get_client(host=clickhouse_server.host, port=clickhouse_server.port)
    admin.command(f"CREATE DATABASE {database}")
    client = clickhouse_connect.get_client(
        host=clickhouse_server.host, port=clickhouse_server.port, database=database
    )
    model = f"churn-{uuid4().hex[:6]}"
    loop: SeededLoop = seed_warehouse(client, model, windows=90, versions=VERSIONS)
    try:
        with console_system(tmp, clickhouse_server.url, database, refresh_s=1) as urls:
            seed_registry(urls["registry"], "a-token", model, VERSIONS, trainer_token="t-token")
            yield {**urls, "model": model, "loop": loop, "client": client, "tmp": tmp}
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {database}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed: run deploy/bootstrap.sh (as root it installs it)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            instance.close()


def signed_in(browser: Any, console: str, token: str) -> Any:
    """A fresh browser context signed in with ``token`` through the login form."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.goto(f"{console}/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def chart_points(where: Any, selector: str = "svg.chart") -> list[int]:
    """The number of data marks of each chart under ``where`` (a page or a locator)."""
    return [int(x) for x in where.locator(selector).evaluate_all("els => els.map(e => e.dataset.points)")]


def test_models_page_shows_each_model_with_health_and_sparklines(
    system: dict[str, Any], browser: Any
) -> None:
    page = signed_in(browser, system["console"], "r-token")
    row = page.locator("table.models tr", has_text=system["model"])
    assert row.locator("td").nth(1).inner_text().strip() == str(VERSIONS)
    assert row.locator("[data-status]").get_attribute("data-status") == "ok"
    points = chart_points(row)
    assert len(points) == 2 and all(n >= 80 for n in points), points  # traffic and accuracy of ~90 windows
    assert "rita (reader)" in page.inner_text("header")


def test_model_page_shows_versions_lineage_artifacts_and_alias_timeline(
    system: dict[str, Any], browser: Any
) -> None:
    page = signed_in(browser, system["console"], "r-token")
    page.goto(f"{system['console']}/models/{system['model']}")
    versions = page.locator("table.versions tbody tr")
    assert versions.count() == VERSIONS
    newest = versions.first.inner_text()
    assert "v3" in newest and "parent v2" in newest and "data snapshot 3.parquet" in newest
    snapshot = versions.first.locator("code[title$='3.parquet']").get_attribute("title")
    assert snapshot == f"file:///snapshots/{system['model']}/3.parquet"  # the whole URI on hover
    assert (
        "data sha256" in newest and "0000000000" in newest and "model.joblib" in newest and "1.1 kB" in newest
    )
    assert chart_points(page, "svg.lanes") == [2]  # production: v1, then v3
    history = page.locator("table.history").inner_text()
    assert "retrained after drift" in history and "trainer" in history
    assert page.locator("#rollback, #promote").count() == 0  # a reader gets no buttons
    assert page.locator("form.action").count() == 0


def test_drift_page_shows_the_evidence_and_window_against_reference(
    system: dict[str, Any], browser: Any
) -> None:
    page = signed_in(browser, system["console"], "r-token")
    page.goto(f"{system['console']}/models/{system['model']}/drift")
    accuracy = chart_points(page, "figure.accuracy svg.chart")
    assert accuracy and accuracy[0] >= 80
    assert page.locator("figure.accuracy line.mark").count() >= 3  # two alias moves and the drift alert
    evidence = page.locator("table.evidence tbody tr")
    assert evidence.count() == 2 and "tenure" in evidence.first.inner_text() + evidence.nth(1).inner_text()
    tenure = page.locator(".feature-plots[data-feature=tenure]")
    assert tenure.locator("rect.window").count() == 10 and tenure.locator("polyline.window").count() == 1
    plan = page.locator(".feature-plots[data-feature=plan]")
    assert plan.locator("rect.reference").count() == 3
    # the window's shift is drawn: its median tenure lies right of the reference's
    shares = plan.locator("rect.window").evaluate_all("els => els.map(e => e.textContent)")
    assert any("pro" in s for s in shares)


def test_training_runs_and_dead_letters_pages(system: dict[str, Any], browser: Any) -> None:
    page = signed_in(browser, system["console"], "r-token")
    page.goto(f"{system['console']}/models/{system['model']}/training")
    runs = page.locator("table.runs tbody tr")
    assert runs.count() == 2
    text = page.locator("table.runs").inner_text()
    assert (
        "promoted" in text and "0.91 vs 0.74" in text and "min_improvement" in text and "35.5 s CPU" in text
    )
    page.goto(f"{system['console']}/dead-letters")
    assert sum(chart_points(page)) >= 3
    samples = page.locator("table.samples tbody tr")
    assert samples.count() == 12 and "{not json" in page.locator("table.samples").inner_text()


def test_rollback_clicked_in_the_browser_moves_the_alias_and_is_audited(
    system: dict[str, Any], browser: Any
) -> None:
    console, registry, model = system["console"], system["registry"], system["model"]
    page = signed_in(browser, console, "w-token")
    page.goto(f"{console}/models/{model}")
    page.fill("#rollback-form input[name=reason]", "v3 answers slowly")
    page.click("#rollback")
    page.wait_for_selector("#notice")
    assert "rolled back to v1 by wes" in page.inner_text("#notice")
    assert httpx.get(f"{registry}/models/{model}/aliases/production").json()["version"] == 1
    history = page.locator("table.history tbody tr").first.inner_text()
    assert "rolled_back" in history and "wes" in history and "v3 answers slowly" in history
    audit = page.locator("table.audit tbody tr").first.inner_text()
    assert "wes" in audit and "writer" in audit
    entries = httpx.get(
        f"{registry}/audit", params={"model": model}, headers={"Authorization": "Bearer a-token"}
    )
    assert entries.json()["items"][0]["actor"] == "wes"
    # promote back through the other form, so the other tests see v3 in production
    page.select_option("#promote-form select[name=version]", str(VERSIONS))
    page.fill("#promote-form input[name=reason]", "fixed")
    page.click("#promote")
    page.wait_for_selector("#notice")
    assert httpx.get(f"{registry}/models/{model}/aliases/production").json()["version"] == VERSIONS


def test_an_action_without_the_form_csrf_token_is_refused(system: dict[str, Any]) -> None:
    console, model = system["console"], system["model"]
    with httpx.Client(base_url=console) as http:
        http.post("/login", data={"token": "w-token"})
        refused = http.post(
            f"/models/{model}/aliases/production/rollback", data={"reason": "forged", "csrf": "x"}
        )
        assert refused.status_code == 403 and "CSRF" in refused.text
        cookie = http.cookies.get("driftloop_console_token")
    assert cookie == "w-token"
    assert httpx.get(f"{system['registry']}/models/{model}/aliases/production").json()["version"] == VERSIONS


def test_login_cookie_is_httponly_and_strict_and_bad_tokens_are_refused(system: dict[str, Any]) -> None:
    with httpx.Client(base_url=system["console"]) as http:
        bad = http.post("/login", data={"token": "nope"})
        assert bad.status_code == 401 and "does not accept" in bad.text
        good = http.post("/login", data={"token": "r-token", "next": "//evil.example/"})
        assert good.status_code == 303 and good.headers["location"] == "/"
        cookies = good.headers.get_list("set-cookie")
        assert all("HttpOnly" in c and "SameSite=strict" in c for c in cookies), cookies


def test_pages_update_live_while_the_loop_runs(system: dict[str, Any], browser: Any) -> None:
    page = signed_in(browser, system["console"], "r-token")
    page.goto(f"{system['console']}/dead-letters")
    before = page.locator("table.samples tbody tr").first.inner_text()
    client = system["client"]
    from datetime import UTC, datetime

    from services.monitor.domain import tables

    now = datetime.now(UTC)
    client.insert(
        "dead_letters",
        [[uuid4(), system["model"], "http:ingest", "empty_body", "live one", b"", None, None, now, now]],
        column_names=tables.DEAD_LETTERS.column_names,
    )
    page.wait_for_function(
        "() => document.querySelector('table.samples tbody tr').innerText.includes('live one')", timeout=15000
    )
    assert page.locator("table.samples tbody tr").first.inner_text() != before


def test_a_writers_model_page_updates_live_until_they_type_a_reason(
    system: dict[str, Any], browser: Any
) -> None:
    console, registry, model = system["console"], system["registry"], system["model"]
    page = signed_in(browser, console, "w-token")
    page.goto(f"{console}/models/{model}")
    admin = {"Authorization": "Bearer a-token"}
    moved = httpx.put(
        f"{registry}/models/{model}/aliases/staging",
        json={"version": 2, "reason": "elsewhere"},
        headers=admin,
    )
    assert moved.status_code == 200
    page.wait_for_function(
        "() => document.querySelector('table.history').innerText.includes('elsewhere')", timeout=15000
    )
    # a reason being typed is never swept away by a refresh
    page.fill("#rollback-form input[name=reason]", "half-typed")
    httpx.put(
        f"{registry}/models/{model}/aliases/staging", json={"version": 1, "reason": "again"}, headers=admin
    )
    page.wait_for_timeout(3000)
    assert page.input_value("#rollback-form input[name=reason]") == "half-typed"
    assert "again" not in page.inner_text("table.history")
