"""Every Kafka client Driftloop makes is built here, so a TLS/SASL setting or a reliability default is set once.

:class:`KafkaConnection` is the only reader of the ``kafka_*`` connection settings. Producers default to
``acks="all"`` with idempotence (nothing accepted is lost or doubled by a retry); consumers never
auto-commit (a loop commits only after its work is stored).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from shared.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


@dataclass(frozen=True)
class KafkaConnection:
    """Where Kafka is and how to authenticate: everything a client needs besides its own role.

    >>> KafkaConnection("b1:9092").options()
    {'bootstrap_servers': 'b1:9092', 'security_protocol': 'PLAINTEXT'}
    >>> sorted(KafkaConnection("b1:9093", "SASL_PLAINTEXT", "PLAIN", "app", SecretStr("pw")).options())
    ['bootstrap_servers', 'sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
    """

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    sasl_username: str = ""
    sasl_password: SecretStr = field(default_factory=lambda: SecretStr(""))
    ssl_cafile: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        return cls(
            bootstrap=settings.kafka_bootstrap,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_cafile=settings.kafka_ssl_cafile,
        )

    def options(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client takes for this connection."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.security_protocol.endswith("SSL"):
            options["ssl_context"] = ssl.create_default_context(cafile=self.ssl_cafile or None)
        return options


# What a caller may name Kafka by: settings, a connection, or a bare bootstrap string (local tools, tests).
Endpoint: TypeAlias = Settings | KafkaConnection | str


def connection(source: Endpoint) -> KafkaConnection:
    """The connection an :data:`Endpoint` names."""
    if isinstance(source, KafkaConnection):
        return source
    if isinstance(source, str):
        return KafkaConnection(source)
    return KafkaConnection.from_settings(source)


def producer(source: Endpoint, **options: Any) -> AIOKafkaProducer:
    """A producer that loses and doubles nothing by default (``acks="all"``, idempotent); ``options``
    override or add aiokafka producer arguments (``linger_ms``, ``compression_type``, ...)."""
    return AIOKafkaProducer(
        **connection(source).options(), **{"acks": "all", "enable_idempotence": True, **options}
    )


def consumer(source: Endpoint, *topics: str, group_id: str | None, **options: Any) -> AIOKafkaConsumer:
    """A consumer that commits only when its caller says so; ``group_id=None`` reads every partition."""
    return AIOKafkaConsumer(
        *topics, **connection(source).options(), group_id=group_id, **{"enable_auto_commit": False, **options}
    )
