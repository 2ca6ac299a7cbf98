"""Driftloop's one settings model: every value from ``DRIFTLOOP_*`` env vars or ``.env``, each with a local default."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", ""}


def _default_cache_dir() -> Path:
    """The user's cache (XDG), so large downloads like the Kafka jars survive ``rm -rf .driftloop``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driftloop"


def is_loopback(host: str) -> bool:
    """True when ``host`` names this machine, so a local server may be started for it."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """All of Driftloop's configuration; build it at start-up (``Settings()``), never at import."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path(".driftloop"), description="Folder for local data: broker log, ClickHouse, S3."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Cache outside the repo for downloads shared by every checkout (the Kafka broker jars).",
    )
    log_level: str = Field("INFO", description="Log level of every service.")

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers; a loopback address means the local broker."
    )
    kafka_controller_port: int = Field(9093, description="KRaft controller port of the local broker.")
    kafka_partitions: int = Field(3, ge=1, description="Partitions for topics Driftloop creates.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor for created topics.")
    kafka_heap: str = Field("512m", description="JVM heap of the local broker.")
    topic_prefix: str = Field("", description="Prefix for every topic name (isolates tenants and tests).")

    clickhouse_url: str = Field(
        "http://127.0.0.1:8123",
        description="ClickHouse HTTP URL; a loopback address means the embedded (chDB) server.",
    )
    clickhouse_database: str = Field("driftloop", description="ClickHouse database for Driftloop's tables.")
    clickhouse_user: str = Field("default", description="ClickHouse user.")
    clickhouse_password: str = Field("", description="ClickHouse password.")

    artifact_root: str = Field(
        "",
        description="Where artifacts live: file:///path or s3://bucket/prefix; empty is DATA_DIR/artifacts.",
    )
    s3_endpoint_url: str = Field(
        "http://127.0.0.1:9000",
        description="S3 API endpoint for s3:// artifacts; a loopback address means the local S3 server.",
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key_id: str = Field("driftloop", description="S3 access key id.")
    s3_secret_access_key: str = Field("driftloop-secret", description="S3 secret access key.")

    registry_url: str = Field("http://127.0.0.1:8000", description="Base URL of the registry service.")
    registry_database_url: str = Field(
        "", description="SQLAlchemy URL of the registry metadata; empty is SQLite in DATA_DIR."
    )
    # registry
    registry_token: str = Field(
        "", description="Bearer token the CLI and other clients send to the registry (DRIFTLOOP_REGISTRY_TOKEN)."
    )
    registry_tokens: dict[str, str] = Field(
        default_factory=dict,
        description='Tokens the registry accepts, as JSON: {"<token>": "<name>:<role>"}; role is reader, writer or admin.',
    )
    registry_open_reads: bool = Field(
        True, description="Let requests without a token read the registry (as an anonymous reader)."
    )
    registry_allow_anonymous_writes: bool = Field(
        False, description="Let requests without a token write as an anonymous admin; for local use only."
    )
    registry_relay_interval: float = Field(
        0.5, gt=0, description="Seconds between the registry outbox relay's polls for unpublished events."
    )
    registry_relay_enabled: bool = Field(
        True, description="Run the outbox relay (Kafka) and webhook deliveries inside the registry process."
    )
    registry_webhook_max_attempts: int = Field(
        8, ge=1, description="Attempts per webhook delivery before it is marked failed."
    )

    @property
    def kafka_host_port(self) -> tuple[str, int]:
        """Host and port of the first bootstrap server."""
        first = self.kafka_bootstrap.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def kafka_is_local(self) -> bool:
        return all(
            is_loopback(s.strip().rpartition(":")[0].strip("[]")) for s in self.kafka_bootstrap.split(",")
        )

    @property
    def clickhouse_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.clickhouse_url)
        return parts.hostname or "127.0.0.1", parts.port or (8443 if parts.scheme == "https" else 8123)

    @property
    def clickhouse_is_local(self) -> bool:
        return is_loopback(self.clickhouse_host_port[0])

    @property
    def s3_host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.s3_endpoint_url)
        return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def s3_is_local(self) -> bool:
        return bool(self.s3_endpoint_url) and is_loopback(self.s3_host_port[0])

    @property
    def resolved_artifact_root(self) -> str:
        if self.artifact_root:
            return self.artifact_root
        return (self.data_dir / "artifacts").resolve().as_uri()

    @property
    def resolved_registry_database_url(self) -> str:
        if self.registry_database_url:
            return self.registry_database_url
        return f"sqlite:///{(self.data_dir / 'registry.db').resolve()}"
