"""deploy/kafka/acls.sh on a real broker with an authorizer: Kafka's own AclCommand applies every rule, and
the broker then lets an app write ``predictions-raw`` but not ``predictions``, which only ingest may write.

A second single-node KRaft broker (StandardAuthorizer, SASL/PLAIN users admin, apps, ingest), started for
this module only; the session broker has no authorizer.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from pydantic import SecretStr

from driftloop.infra.kafka import (
    LOG4J_PROPERTIES,
    ensure_kafka_jars,
    new_cluster_id,
    render_server_properties,
)
from driftloop.process import ManagedProcess, free_port, port_open, spawn
from shared.kafka.admin import create_topics
from shared.kafka.clients import consumer as kafka_consumer
from shared.kafka.clients import producer as kafka_producer
from shared.settings import Settings
from shared.topics import topic_names

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
USERS = {"admin": "admin-secret", "apps": "apps-secret", "ingest": "ingest-secret"}


@dataclass(frozen=True)
class SecuredBroker:
    bootstrap: str
    lib: Path
    admin_config: Path
    process: ManagedProcess

    def client_options(self, user: str) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": user,
            "sasl_plain_password": USERS[user],
        }


def _java(lib: Path, main: str, *args: str) -> list[str]:
    return [
        "java", "-Xmx256m", "-XX:TieredStopAtLevel=1", f"-Dlog4j.configuration={(lib.parent / 'log4j.properties').as_uri()}",
        "-cp", f"{lib}/*", main, *args,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    root = tmp_path_factory.mktemp("kafka-acl")
    lib = ensure_kafka_jars()
    port, controller = free_port(), free_port()
    props = dict(
        line.split("=", 1)
        for line in render_server_properties(
            host="127.0.0.1", port=port, controller_port=controller, log_dir=root / "data", partitions=1
        ).splitlines()
    )
    jaas = " ".join(f'user_{u}="{p}"' for u, p in USERS.items())
    props |= {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="admin" password="{USERS["admin"]}" {jaas};'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        # the controller listener is PLAINTEXT (ANONYMOUS) inside this one node
        "super.users": "User:admin;User:ANONYMOUS",
        "auto.create.topics.enable": "false",
    }
    config = root / "server.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (root / "log4j.properties").write_text(LOG4J_PROPERTIES)
    admin_config = root / "admin.properties"
    admin_config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{USERS["admin"]}";\n'
    )
    lib_link = root / "lib"
    lib_link.symlink_to(lib)
    subprocess.run(
        _java(lib_link, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(config)),
        check=True,
        capture_output=True,
        timeout=120,
    )
    process = spawn("kafka-acl", _java(lib_link, "kafka.Kafka", str(config)), root / "kafka.log", cwd=root)
    try:
        deadline = time.monotonic() + 90
        while not port_open("127.0.0.1", port):
            assert process.proc.poll() is None and time.monotonic() < deadline, (
                root / "kafka.log"
            ).read_text()
            time.sleep(0.25)
        yield SecuredBroker(f"127.0.0.1:{port}", lib_link, admin_config, process)
    finally:
        process.stop()


async def _create_topics(broker: SecuredBroker, names: list[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        admin = AIOKafkaAdminClient(**broker.client_options("admin"))
        try:
            await admin.start()
            await admin.create_topics([NewTopic(n, 1, 1) for n in names])
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def _write(broker: SecuredBroker, user: str, topic: str) -> str:
    """``ok`` when the broker took the record from ``user``, else the error's name."""
    producer = AIOKafkaProducer(**broker.client_options(user), request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"event_type": "prediction_logged"}', key=b"churn")
        return "ok"
    except TopicAuthorizationFailedError as exc:
        return type(exc).__name__
    finally:
        await producer.stop()


def test_the_acl_script_applies_on_a_real_authorizer_and_keeps_apps_off_internal_topics(
    secured_broker: SecuredBroker, tmp_path: Path
) -> None:
    prefix = "acl-"
    topics = topic_names(prefix)
    asyncio.run(_create_topics(secured_broker, list(topics.all())))

    acls = tmp_path / "kafka-acls.sh"  # what the Kafka distribution's bin/kafka-acls.sh runs
    java = shlex.join(_java(secured_broker.lib, "kafka.admin.AclCommand"))
    acls.write_text(f'#!/usr/bin/env bash\nexec {java} "$@"\n')
    acls.chmod(0o755)
    env = {
        **os.environ,
        "BOOTSTRAP": secured_broker.bootstrap,
        "ADMIN_CONFIG": str(secured_broker.admin_config),
        "PREFIX": prefix,
        "KAFKA_ACLS": str(acls),
    }
    done = subprocess.run(
        ["bash", str(ROOT / "deploy" / "kafka" / "acls.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    async def writes() -> dict[tuple[str, str], str]:
        cases = [
            ("apps", topics.predictions_raw),
            ("apps", topics.labels_raw),
            ("apps", topics.predictions),
            ("apps", topics.drift_events),
            ("ingest", topics.predictions),
            ("ingest", topics.dead_letter),
            ("ingest", topics.model_events),
        ]
        return {(user, topic): await _write(secured_broker, user, topic) for user, topic in cases}

    assert asyncio.run(writes()) == {
        ("apps", topics.predictions_raw): "ok",
        ("apps", topics.labels_raw): "ok",
        ("apps", topics.predictions): "TopicAuthorizationFailedError",
        ("apps", topics.drift_events): "TopicAuthorizationFailedError",
        ("ingest", topics.predictions): "ok",
        ("ingest", topics.dead_letter): "ok",
        ("ingest", topics.model_events): "TopicAuthorizationFailedError",
    }


def test_driftloop_clients_speak_sasl_from_the_settings_alone(secured_broker: SecuredBroker) -> None:
    """One set of settings makes the admin, the producer and the consumer authenticate (shared/kafka/)."""
    settings = Settings(
        kafka_bootstrap=secured_broker.bootstrap,
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="admin",
        kafka_sasl_password=USERS["admin"],
    )
    topic = "sasl-roundtrip"
    assert create_topics(settings, [topic], 1, 1) == [topic]

    async def roundtrip() -> list[bytes]:
        producer = kafka_producer(settings)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"through SASL", key=b"churn")
        finally:
            await producer.stop()
        consumer = kafka_consumer(settings, topic, group_id=None, auto_offset_reset="earliest")
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=15_000)
        finally:
            await consumer.stop()
        return [r.value or b"" for records in batch.values() for r in records]

    assert asyncio.run(roundtrip()) == [b"through SASL"]

    wrong = settings.model_copy(update={"kafka_sasl_password": SecretStr("not-the-password")})

    async def refused() -> None:
        producer = kafka_producer(wrong, request_timeout_ms=5_000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaError):
        asyncio.run(refused())
