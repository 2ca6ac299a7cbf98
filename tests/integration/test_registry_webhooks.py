"""Webhooks get each change signed with HMAC-SHA256, and are retried until the receiver accepts."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.kafka import KafkaBroker

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w-token"}
SECRET = "a-webhook-secret-of-some-length"


class Receiver:
    """A real HTTP endpoint that refuses the first ``failures`` calls, then records what it gets."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls += 1
                if receiver.calls <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.accepted.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.server.shutdown()


def test_webhook_is_signed_and_retried_until_delivered(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path, receiver: Receiver
) -> None:
    create_topics(kafka.bootstrap, [topic_names(topic_prefix).model_events], 3, 1)
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=topic_prefix,
        registry_tokens={"w-token": "wes:writer"},
        registry_relay_interval=0.1,
        registry_webhook_allowed_hosts=["127.0.0.1"],  # the receiver is a local test server
    )
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings))) as client:
        client.post("/models", json={"name": name}, headers=WRITER)
        hook = client.post(
            f"/models/{name}/webhooks",
            json={"url": receiver.url, "secret": SECRET, "event_types": ["alias_changed"]},
            headers=WRITER,
        ).json()
        client.post(f"/models/{name}/versions/upload", files={"artifact": ("m", b"m")}, headers=WRITER)
        client.put(f"/models/{name}/aliases/production", json={"version": 1}, headers=WRITER)
        deadline = time.monotonic() + 60
        while not receiver.accepted and time.monotonic() < deadline:
            time.sleep(0.1)
        deliveries = client.get(f"/models/{name}/webhooks/{hook['id']}/deliveries", headers=WRITER).json()

    assert len(receiver.accepted) == 1  # only the subscribed event type
    headers, body = receiver.accepted[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Driftloop-Signature"] == expected
    assert headers["X-Driftloop-Event"] == "alias_changed"
    event = json.loads(body)
    assert event["model_name"] == name and event["alias"] == "production" and event["version"] == 1
    assert deliveries[0]["status"] == "delivered" and deliveries[0]["attempts"] == 3
    assert "HTTP 500" not in deliveries[0]["last_error"]
