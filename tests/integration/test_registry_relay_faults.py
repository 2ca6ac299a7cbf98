"""No row, receiver or outage stops the registry: bad outbox rows and webhook targets are set aside, and
PostgreSQL or S3 away means 503 and a degraded /healthz until it is back, healed without a restart.

Real Kafka, SQLite, PostgreSQL and S3 servers, HTTP receivers that misbehave on purpose, and outages made
by cutting a forwarding port (tests/fixtures/forwarder.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from services.registry.adapters.db import make_engine, writing
from services.registry.adapters.kafka import KafkaPublisher
from services.registry.adapters.migrations import migrate
from services.registry.adapters.outbound import OutboundPolicy
from services.registry.adapters.tables import outbox, webhook_deliveries
from services.registry.adapters.webhooks import WebhookSender
from services.registry.bootstrap import bootstrap
from services.registry.entrypoints.http import create_app
from services.registry.entrypoints.stream import OutboxRelay
from shared.codec import encode
from shared.events import ModelCreated
from shared.kafka.admin import create_topics
from shared.settings import Settings
from shared.topics import topic_names
from tests.fixtures.forwarder import Forwarder
from tests.fixtures.kafka import KafkaBroker
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.s3 import S3Server

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer w-token"}
DEADLINE_S = 60.0


def _until(check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def _queue(engine: Engine, model: str, payload: str) -> int:
    with writing(engine) as conn:
        row = conn.execute(
            outbox.insert().values(
                model_name=model,
                event_type="model_created",
                event_id=str(uuid4()),
                payload=payload,
                created_at=datetime.now(UTC),
            )
        )
        return int(row.inserted_primary_key[0])  # type: ignore[index]


def _created(model: str, by: str = "wes") -> str:
    return encode(ModelCreated(model_name=model, created_by=by)).decode()


def _keys_on(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    async def consume() -> list[tuple[bytes, bytes]]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"g-{uuid4().hex}"
        )
        await consumer.start()
        seen: list[tuple[bytes, bytes]] = []
        try:
            deadline = time.monotonic() + DEADLINE_S
            while len(seen) < expected and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen += [(r.key or b"", r.value or b"") for r in records]
        finally:
            await consumer.stop()
        return seen

    return asyncio.run(consume())


def test_a_bad_outbox_row_is_set_aside_after_its_attempts_and_the_relay_moves_on(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    topic = topic_names(topic_prefix).model_events
    create_topics(kafka.bootstrap, [topic], 3, 1)
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    huge = _queue(engine, "a", _created("a", by="x" * 2_000_000))  # over Kafka's 1 MB
    after_huge = _queue(engine, "a", _created("a"))  # same model: waits, then goes out after the bad row
    garbage = _queue(engine, "b", "\x00 not an event")
    other = _queue(engine, "c", _created("c"))  # another model: never held up
    mismatch = _queue(engine, "d", _created("someone-else"))

    async def relay() -> list[int]:
        publisher = KafkaPublisher(kafka.bootstrap, topic)
        relayer = OutboxRelay(engine, publisher, max_attempts=3)
        published = []
        try:
            for _ in range(4):
                await relayer.relay_once()
                published.append(relayer.published)
        finally:
            await publisher.close()
        return published

    # "c" goes out at once; "a"'s second row waits until its first is set aside (3rd round), then goes
    assert asyncio.run(relay()) == [1, 1, 1, 2]
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(outbox)).all()}
    for bad, reason in (
        (huge, "MessageSizeTooLargeError"),
        (garbage, "invalid_event"),
        (mismatch, "model_mismatch"),
    ):
        assert rows[bad].failed_at is not None and rows[bad].published_at is None, rows[bad]
        assert rows[bad].attempts == 3 and reason in rows[bad].last_error, rows[bad]
    for good in (after_huge, other):
        assert rows[good].published_at is not None and rows[good].attempts == 0
    seen = _keys_on(kafka.bootstrap, topic, 2)
    assert sorted(key for key, _ in seen) == [b"a", b"c"]
    engine.dispose()


class Target:
    """A real HTTP endpoint that misbehaves the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode, self.calls = mode, 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                target.calls += 1
                if target.mode == "ok":
                    self.send_response(204)
                    self.end_headers()
                elif target.mode == "redirect":
                    self.send_response(307)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                elif target.mode == "garbage":
                    self.wfile.write(b"\x00\xffthis is not HTTP\r\n\r\n")
                elif target.mode == "huge":
                    self.send_response(500)
                    self.send_header("Content-Length", str(50_000_000))
                    self.end_headers()
                    with_chunk = b"\x00" * 65536
                    for _ in range(800):
                        self.wfile.write(with_chunk)
                elif target.mode == "trickle":  # answers one byte a second, forever
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    for _ in range(120):
                        time.sleep(1)
                        self.wfile.write(b"X")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def targets() -> Iterator[dict[str, Target]]:
    made = {mode: Target(mode) for mode in ("ok", "redirect", "garbage", "huge", "trickle")}
    yield made
    for target in made.values():
        target.server.shutdown()


def test_webhook_targets_that_hang_redirect_or_answer_garbage_never_stop_delivery(
    kafka: KafkaBroker, topic_prefix: str, tmp_path: Path, targets: dict[str, Target]
) -> None:
    create_topics(kafka.bootstrap, [topic_names(topic_prefix).model_events], 1, 1)
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=topic_prefix,
        registry_tokens={"w-token": "wes:writer"},
        registry_webhook_allowed_hosts=["127.0.0.1"],  # the targets are local test servers
    )
    name = f"m-{uuid4().hex[:8]}"
    with TestClient(create_app(bootstrap(settings, run_relays=False))) as client:
        client.post("/models", json={"name": name}, headers=WRITER).raise_for_status()
        hooks = {}
        for mode, target in targets.items():
            body = {"url": target.url, "event_types": ["model_updated"]}
            hooks[mode] = client.post(f"/models/{name}/webhooks", json=body, headers=WRITER).json()["id"]
        client.patch(f"/models/{name}", json={"description": "changed"}, headers=WRITER).raise_for_status()
        engine: Engine = client.app.state.engine  # type: ignore[attr-defined]

        sender = WebhookSender(
            engine, max_attempts=2, timeout=2.0, policy=OutboundPolicy.from_settings(settings)
        )

        async def deliver() -> float:
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=2.0) as http:
                await sender.send_once(http)
                await asyncio.sleep(1.1)  # the first retry is due after 1 s
                await sender.send_once(http)
            return time.monotonic() - started

        elapsed = asyncio.run(deliver())
        with engine.connect() as conn:
            rows = {r.webhook_id: r for r in conn.execute(select(webhook_deliveries)).all()}
        by_mode = {mode: rows[hook] for mode, hook in hooks.items()}
        assert by_mode["ok"].status == "delivered" and targets["ok"].calls == 1
        for mode, expected in (
            ("redirect", "HTTP 307 to http://169.254.169.254"),
            ("garbage", "Error"),
            ("huge", "HTTP 500"),
            ("trickle", "no answer within 2s"),
        ):
            row = by_mode[mode]
            assert row.status == "failed" and row.attempts == 2 and expected in row.last_error, (mode, row)
        assert targets["redirect"].calls == 2  # the redirect was not followed
        assert elapsed < 15, f"two rounds took {elapsed:.1f}s: a slow target held up the others"
        listed = client.get(f"/models/{name}/webhooks/{hooks['trickle']}/deliveries", headers=WRITER).json()
        assert listed[0]["status"] == "failed"


def test_postgresql_away_at_start_and_later_is_degraded_then_heals_by_itself(
    postgres: PostgresServer, kafka: KafkaBroker, topic_prefix: str, tmp_path: Path
) -> None:
    url = postgres.database()
    forwarder = Forwarder((postgres.host, postgres.port))
    database = url.replace(f"{postgres.host}:{postgres.port}", f"127.0.0.1:{forwarder.port}")
    create_topics(kafka.bootstrap, [topic_names(topic_prefix).model_events], 1, 1)
    settings = Settings(
        data_dir=tmp_path,
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=topic_prefix,
        registry_database_url=database,
        registry_tokens={"w-token": "wes:writer"},
        registry_relay_interval=0.1,
    )
    with TestClient(create_app(bootstrap(settings))) as client:  # starts although the database is away
        answer = client.get("/healthz")
        health = answer.json()
        assert answer.status_code == 503 and health["status"] == "degraded", health
        assert "database" in health["unavailable"], health
        refused = client.get("/models")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "unavailable"

        forwarder.up()
        _until(lambda: client.get("/healthz").json()["status"] == "ok", "the registry healed")
        name = f"m-{uuid4().hex[:8]}"
        assert client.post("/models", json={"name": name}, headers=WRITER).status_code == 201

        forwarder.down()  # away again while serving
        _until(lambda: client.get("/healthz").json()["status"] == "degraded", "the outage showed")
        assert client.get(f"/models/{name}").status_code == 503
        assert client.get(f"/models/{name}/aliases/production").status_code == 503  # the fast path too
        forwarder.up()
        _until(lambda: client.get(f"/models/{name}").status_code == 200, "reads came back")
        _until(lambda: client.get("/healthz").json()["status"] == "ok", "health came back")
    forwarder.down()
    assert json.dumps(health)  # the body is plain JSON for any probe


def test_s3_away_is_a_503_and_degraded_health_and_heals_by_itself(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    forwarder = Forwarder((s3_server.host, s3_server.port))
    settings = s3_server.settings(
        data_dir=tmp_path,
        artifact_root=f"s3://{s3_bucket}/registry",
        s3_endpoint_url=f"http://127.0.0.1:{forwarder.port}",
        registry_tokens={"w-token": "wes:writer"},
        registry_relay_enabled=False,
    )
    name = f"m-{uuid4().hex[:8]}"
    upload = {"artifact": ("model.joblib", b"a model")}
    with TestClient(create_app(bootstrap(settings))) as client:
        client.post("/models", json={"name": name}, headers=WRITER).raise_for_status()
        refused = client.post(f"/models/{name}/versions/upload", files=upload, headers=WRITER)
        assert refused.status_code == 503 and refused.json()["error"]["field"] == "artifact", refused.text
        answer = client.get("/healthz")  # degraded, but reads and writes still work: 200
        health = answer.json()
        assert answer.status_code == 200 and health["status"] == "degraded", health
        assert "artifacts" in health["unavailable"], health

        forwarder.up()
        _until(lambda: client.get("/healthz").json()["status"] == "ok", "S3 came back")
        stored = client.post(f"/models/{name}/versions/upload", files=upload, headers=WRITER)
        assert stored.status_code == 201, stored.text
    forwarder.down()
