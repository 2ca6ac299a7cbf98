"""Webhooks cannot be aimed inward: loopback, private and the stack's own addresses need an admin's say-so."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from services.registry.adapters.outbound import IPAddress, OutboundPolicy, Resolver
from services.registry.adapters.tables import webhook_deliveries
from services.registry.adapters.webhooks import WebhookSender
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from tests.integration.test_registry_api import WRITER, registry_settings

pytestmark = pytest.mark.integration


class Receiver:
    """A real HTTP server on 127.0.0.1 that records the Host header of every POST it gets."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.hosts.append(self.headers["Host"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def _fixed_dns(name: str, address: str) -> Resolver:
    """A resolver that knows one name (and none of the stack's)."""

    def resolver(host: str, _port: int) -> list[IPAddress]:
        if host != name:
            raise OSError(f"{host} is unknown here")
        return [ipaddress.ip_address(address)]

    return resolver


def _deliver(engine: Engine, policy: OutboundPolicy) -> list[str]:
    """One round of the webhook sender; the last error of every delivery."""

    async def once() -> None:
        async with httpx.AsyncClient(timeout=5.0) as http:
            await WebhookSender(engine, max_attempts=1, timeout=5.0, policy=policy).send_once(http)

    asyncio.run(once())
    with engine.connect() as conn:
        return [r.last_error for r in conn.execute(select(webhook_deliveries)).all()]


def test_webhooks_to_loopback_are_refused_without_the_allow_list(tmp_path: Path, receiver: Receiver) -> None:
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(registry_settings(tmp_path)))) as client:
        client.post("/models", json={"name": name}, headers=WRITER).raise_for_status()
        for url in (
            f"http://127.0.0.1:{receiver.port}/hook",
            f"http://localhost:{receiver.port}/hook",  # a name that resolves to loopback
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:7f00:1]/hook",
        ):
            refused = client.post(f"/models/{name}/webhooks", json={"url": url}, headers=WRITER)
            assert refused.status_code == 422, (url, refused.text)
            error = refused.json()["error"]
            assert error["field"] == "url" and "DRIFTLOOP_REGISTRY_WEBHOOK_ALLOWED_HOSTS" in error["message"]
        assert client.get(f"/models/{name}/webhooks", headers=WRITER).json() == []


def test_an_allow_listed_local_receiver_gets_its_deliveries(tmp_path: Path, receiver: Receiver) -> None:
    settings = registry_settings(tmp_path, registry_webhook_allowed_hosts=["127.0.0.1"])
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        client.post("/models", json={"name": name}, headers=WRITER).raise_for_status()
        url = f"http://127.0.0.1:{receiver.port}/hook"
        created = client.post(f"/models/{name}/webhooks", json={"url": url}, headers=WRITER)
        assert created.status_code == 201, created.text
        client.patch(f"/models/{name}", json={"description": "v2"}, headers=WRITER).raise_for_status()
        errors = _deliver(client.app.state.engine, OutboundPolicy.from_settings(settings))  # type: ignore[attr-defined]
    assert errors == [""] and receiver.hosts == [f"127.0.0.1:{receiver.port}"]


def test_a_name_that_rebinds_to_loopback_after_registration_is_refused_at_delivery(
    tmp_path: Path, receiver: Receiver
) -> None:
    settings = registry_settings(tmp_path)
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        # at registration the name resolves to a public address...
        client.app.state.registry.outbound = OutboundPolicy.from_settings(  # type: ignore[attr-defined]
            settings,
            resolver=_fixed_dns("rebind.example", "93.184.216.34"),
        )
        client.post("/models", json={"name": name}, headers=WRITER).raise_for_status()
        url = f"http://rebind.example:{receiver.port}/hook"
        assert client.post(f"/models/{name}/webhooks", json={"url": url}, headers=WRITER).status_code == 201
        client.patch(f"/models/{name}", json={"description": "v2"}, headers=WRITER).raise_for_status()
        # ...when it is delivered, to 127.0.0.1
        rebound = OutboundPolicy.from_settings(settings, resolver=_fixed_dns("rebind.example", "127.0.0.1"))
        errors = _deliver(client.app.state.engine, rebound)  # type: ignore[attr-defined]
    assert receiver.hosts == [] and len(errors) == 1
    assert errors[0].startswith("refused: webhook target rebind.example (127.0.0.1) is a loopback address")


def test_a_delivery_connects_to_the_address_it_checked(tmp_path: Path, receiver: Receiver) -> None:
    settings = registry_settings(tmp_path, registry_webhook_allowed_hosts=["127.0.0.0/8"])
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        client.post("/models", json={"name": name}, headers=WRITER).raise_for_status()
        url = f"http://hooks.invalid:{receiver.port}/hook"  # resolves nowhere but in this policy
        assert client.post(f"/models/{name}/webhooks", json={"url": url}, headers=WRITER).status_code == 201
        client.patch(f"/models/{name}", json={"description": "v2"}, headers=WRITER).raise_for_status()
        pinned = OutboundPolicy.from_settings(settings, resolver=_fixed_dns("hooks.invalid", "127.0.0.1"))
        errors = _deliver(client.app.state.engine, pinned)  # type: ignore[attr-defined]
    assert errors == [""] and receiver.hosts == [f"hooks.invalid:{receiver.port}"]
