"""Every HTTP service counts its requests the same way, and the advisor reads them back as rates."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from services.advisor.adapters.http_services import parse
from services.advisor.domain.http import rates
from shared import http_metrics


def app() -> FastAPI:
    web = FastAPI()

    @web.get("/ok")
    def ok() -> dict[str, str]:
        return {"status": "ok"}

    @web.get("/missing")
    def missing() -> None:
        raise HTTPException(404)

    @web.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    http_metrics.install(web, "model-server")
    return web


def test_requests_are_counted_by_status_class_and_timed_and_scrapes_are_not() -> None:
    client = TestClient(app(), raise_server_exceptions=False)
    before = parse("model-server", 0.0, client.get("/metrics").text)
    for _ in range(7):
        assert client.get("/ok").status_code == 200
    assert client.get("/missing").status_code == 404
    assert client.get("/boom").status_code == 500
    after = parse("model-server", 10.0, client.get("/metrics").text)
    assert before is not None and after is not None
    assert (after.requests, after.errors) == (9, 1)  # the two /metrics reads are not counted
    assert after.buckets[-1] == (float("inf"), 9)
    measured = rates(before, after)
    assert measured is not None
    assert measured.requests_per_s == 0.9 and measured.errors_per_s == 0.1
    assert measured.p99_ms is not None and 0 < measured.p99_ms <= 10_000


def test_a_page_without_the_request_counter_is_no_reading() -> None:
    assert parse("x", 0.0, "# HELP other_total x\n# TYPE other_total counter\nother_total 3.0\n") is None
