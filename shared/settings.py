"""Driftloop's one settings model: every value from ``DRIFTLOOP_*`` env vars or ``.env``, each with a local default."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, Secret, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shared.drift_thresholds import DriftThresholds

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", ""}


def _json_object(value: Any) -> Any:
    """A secret mapping arrives from the environment as JSON text; pydantic-settings parses only plain dicts."""
    if isinstance(value, str):
        return json.loads(value) if value.strip() else {}
    return value


SecretMapping = Annotated[Secret[dict[str, str]], BeforeValidator(_json_object)]
"""A mapping whose keys are secrets (tokens, API keys): masked when printed, revealed with ``get_secret_value``."""

ENV_FILE_VARIABLE = "DRIFTLOOP_ENV_FILE"
"""Names the dotenv file settings are read from (default ``.env`` in the working folder); tests point it nowhere."""

LOCAL_TOKEN_FILE = "local-token"
"""The local admin token `driftloop up` writes under the data folder (mode 0600), used only on loopback."""

LOCAL_TOKEN_PRINCIPAL = "local:admin"

LOCAL_SERVICE_PRINCIPALS = {"trainer": "trainer:writer"}
"""Services that write to the registry on their own behalf, each with a local token of its own
(``<data_dir>/local-token.<service>``), so the audit log and ``model-events`` name the service, not the user."""

SHIPPED_SECRETS = {
    "s3_secret_access_key": "driftloop-secret",
    "ingest_api_keys": "driftloop-local-key",
}
"""Secrets with a default anyone can read in this repository: for loopback only."""


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
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Driftloop client talks to Kafka (TLS and/or SASL)."
    )
    kafka_sasl_mechanism: str = Field("PLAIN", description="SASL mechanism (PLAIN, SCRAM-SHA-256/512).")
    kafka_sasl_username: str = Field("", description="SASL user of every Driftloop Kafka client.")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password of that user.")
    kafka_ssl_cafile: str = Field("", description="CA bundle for Kafka TLS; empty uses the system's.")
    topic_prefix: str = Field("", description="Prefix for every topic name (isolates tenants and tests).")

    clickhouse_url: str = Field(
        "http://127.0.0.1:8123",
        description="ClickHouse HTTP URL; a loopback address means the embedded (chDB) server.",
    )
    clickhouse_database: str = Field("driftloop", description="ClickHouse database for Driftloop's tables.")
    clickhouse_user: str = Field("default", description="ClickHouse user.")
    clickhouse_password: SecretStr = Field(SecretStr(""), description="ClickHouse password.")

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
    s3_secret_access_key: SecretStr = Field(
        SecretStr("driftloop-secret"),
        description="S3 secret access key; the default is for the local S3 server only.",
    )

    event_max_future_seconds: float = Field(
        300.0,
        ge=0,
        description="How far ahead of the receiving clock an event's time may be; later ones are dead-lettered as too_far_in_future.",
    )

    # monitor
    monitor_window_seconds: int = Field(60, ge=1, description="Length of the monitor's event-time windows.")
    monitor_allowed_lateness_seconds: int = Field(
        10, ge=0, description="How long after a window ends its late events are still counted in it."
    )
    monitor_label_wait_seconds: int = Field(
        300,
        ge=0,
        description="How long after a window ends its labels are awaited before judging performance.",
    )
    monitor_idle_windows: int = Field(
        10,
        ge=1,
        description="Empty windows in a row after which a model version is no longer judged until its next event (a retired version costs nothing).",
    )
    monitor_retention_days: int = Field(
        365,
        ge=1,
        description="TTL of the monitor's ClickHouse rows; older events are dead-lettered as too_old.",
    )
    monitor_batch_size: int = Field(
        25_000,
        ge=1,
        description="Most events the monitor inserts in one batch: under a backlog, bigger parts cost the server less per event.",
    )
    monitor_batch_seconds: float = Field(1.0, gt=0, description="Longest the monitor holds a partial batch.")
    monitor_insert_streams: int = Field(
        2,
        ge=1,
        description="Concurrent inserts a big batch of events is split into: ClickHouse parses each insert on one core.",
    )
    monitor_store_columns: bool = Field(
        False,
        description="Store predictions and labels as typed columns the worker builds (Native) instead of "
        "raw JSON that ClickHouse parses through the intake views: less server CPU, more worker CPU per event.",
    )
    monitor_held_events: int = Field(
        100_000,
        ge=0,
        description="Predictions a monitor worker keeps in hand to judge their windows without reading them back "
        "from ClickHouse (about 1.7 KB each with 20 features); a window past the limit is read back. 0: always read back.",
    )
    monitor_session_timeout_seconds: float = Field(
        10.0, ge=6, description="How soon a dead monitor worker's partitions move to the live ones."
    )
    monitor_profile_cache_seconds: float = Field(
        30.0, ge=0, description="How long the monitor reuses a reference profile read from the registry."
    )
    monitor_web_port: int = Field(6066, description="Port of a monitor worker's /health and /metrics.")
    monitor_web_host: str = Field(
        "127.0.0.1",
        description="Address a monitor worker's /health and /metrics listen on: 0.0.0.0 in a container or "
        "pod, so the advisor and Prometheus on other hosts can read them (read-only figures, no secrets).",
    )
    # scaling advisor (docs/adr/0007-scaling-advisor.md)
    advisor_web_port: int = Field(
        6068, description="Port of the scaling advisor's /health, /advice and /metrics."
    )
    advisor_interval_seconds: float = Field(
        5.0,
        gt=0,
        description="Seconds between the scaling advisor's readings of lag, workers and ClickHouse parts.",
    )
    advisor_window_seconds: float = Field(
        120.0,
        gt=0,
        description="How far back the advisor fits its trends (a robust line over these readings).",
    )
    advisor_slo_seconds: float = Field(
        2.0, gt=0, description="The SLO the advisor protects: an event is queryable within this many seconds."
    )
    advisor_headroom: float = Field(
        1.25, ge=1, description="Capacity the advisor asks for above the forecast inflow (1.25 = 25% spare)."
    )
    advisor_horizon_seconds: float = Field(
        180.0, gt=0, description="The advisor speaks when the SLO would break within this many seconds."
    )
    advisor_monitor_urls: str = Field(
        "",
        description="Comma-separated /health URLs of the monitor workers, for their busy time; empty is this "
        "machine's monitor (MONITOR_WEB_PORT).",
    )
    advisor_http_urls: str = Field(
        "",
        description="Comma-separated name=URL pairs of the HTTP services' /metrics the advisor reads for "
        "request rate and p99 latency; empty is this machine's ingest, registry and model server.",
    )
    advisor_disk_warn_days: float = Field(
        30.0,
        gt=0,
        description="The advisor warns when ClickHouse's disk would be full within this many days.",
    )
    drift_thresholds: DriftThresholds = Field(
        default_factory=DriftThresholds,
        description="Default drift thresholds as JSON (alpha, effect sizes, K of M windows, cooldown); "
        "a model's registry entry may override them.",
    )

    registry_url: str = Field("http://127.0.0.1:8000", description="Base URL of the registry service.")
    registry_database_url: str = Field(
        "", description="SQLAlchemy URL of the registry metadata; empty is SQLite in DATA_DIR."
    )
    # registry
    registry_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token the CLI and other clients send to the registry; empty on a loopback registry "
        "is the local admin token `driftloop up` writes to DATA_DIR/local-token.",
    )
    registry_tokens: SecretMapping = Field(
        default_factory=lambda: Secret({}),
        description='Tokens the registry accepts, as JSON: {"<token>": "<name>:<role>"}; role is reader, writer or '
        "admin. A loopback registry also accepts the local admin token (DATA_DIR/local-token).",
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
    registry_workers: int = Field(
        1,
        ge=1,
        description="Registry server processes on one host; each is a replica (one relays at a time).",
    )
    artifact_allowed_prefixes: list[str] = Field(
        default_factory=list,
        description="Artifact URIs outside ARTIFACT_ROOT that may be registered and read, as JSON "
        '(["s3://bucket/old-root", "file:///srv/models"]); empty allows the artifact root only.',
    )
    registry_webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Webhook hosts the registry may call although they are loopback, private or the stack's "
        'own, as JSON host names, addresses or CIDRs (["hooks.internal", "10.1.0.0/16"]); empty: public only.',
    )
    # trainer
    trainer_group: str = Field("driftloop-trainer", description="Consumer group the trainer replicas share.")
    trainer_debounce_seconds: float = Field(
        2.0, ge=0, description="How long a training trigger waits for others for the same model to coalesce."
    )
    trainer_web_port: int = Field(
        6067, ge=0, description="Port of the trainer's /health and /metrics; 0 picks a free one."
    )
    trainer_web_host: str = Field(
        "127.0.0.1",
        description="Address the trainer's /health and /metrics listen on: 0.0.0.0 in a container or pod.",
    )
    code_version: str = Field(
        "", description="Commit of the training code recorded in lineage; empty is the package version."
    )
    # serving and the local system (`driftloop up`)
    serving_port: int = Field(8080, description="Port of the model server `driftloop up` starts.")
    serving_model: str = Field("demo", description="Model the model server started by `driftloop up` serves.")
    serving_alias: str = Field("production", description="Alias that model server follows.")
    serving_alias_check_seconds: float = Field(
        30.0,
        gt=0,
        description="How often a model server resolves its alias at the registry, with Kafka or without it.",
    )
    service_start_timeout_s: float = Field(
        120.0, gt=0, description="How long `driftloop up` waits for each service to become healthy."
    )
    # ingest
    # web console (docs/console.md, docs/adr/0008-web-console.md)
    console_host: str = Field(
        "127.0.0.1", description="Address the web console binds; 0.0.0.0 to accept other machines."
    )
    console_port: int = Field(8300, description="Port of the web console (models, drift, training runs).")
    console_refresh_seconds: float = Field(
        5.0,
        ge=0,
        description="Seconds between a console page's live updates while it is open; 0 turns them off.",
    )
    ingest_host: str = Field(
        "127.0.0.1", description="Address the ingest HTTP service binds; 0.0.0.0 to accept other machines."
    )
    ingest_port: int = Field(8100, description="Port of the ingest HTTP service.")
    ingest_api_keys: SecretMapping = Field(
        default_factory=lambda: Secret({"driftloop-local-key": "local-app"}),
        description='API keys the ingest service accepts, as JSON {"<key>": "<producing app>"}; '
        "the default key is for local use only.",
    )
    ingest_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body ingest accepts (413 above it)."
    )
    ingest_max_batch_items: int = Field(
        50_000, ge=1, description="Most events in one batch request (413 above it)."
    )
    ingest_kafka_timeout_s: float = Field(
        10.0, gt=0, description="How long a request waits for Kafka's acknowledgements before a 503."
    )
    ingest_retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with a 503.")
    ingest_schema_ttl_s: float = Field(
        30.0, ge=0, description="Seconds a model's feature schema fetched from the registry is cached."
    )
    ingest_registry_timeout_s: float = Field(
        2.0, gt=0, description="Timeout of a registry lookup; an unreachable registry means 'schema unknown'."
    )
    ingest_reject_unknown_models: bool = Field(
        True,
        description="Reject (422 / dead-letter) events of a model the registry answers 404 for; "
        "an unreachable registry never rejects.",
    )
    ingest_run_validator: bool = Field(
        True,
        description="Run the stream validator (raw topics -> validated topics) inside the ingest service.",
    )
    ingest_validator_group: str = Field(
        "driftloop-ingest-validator",
        description="Consumer group of the stream validator (shared by replicas).",
    )
    ingest_quality_interval_s: float = Field(
        60.0, gt=0, description="Seconds between DataQualityCounted events per model."
    )
    # cost (`driftloop cost`)
    cost_cpu_hour: float = Field(
        0.05,
        ge=0,
        description="Price of one CPU-hour (one core busy for an hour) in your currency, for `driftloop cost`; "
        "0.05 is about an on-demand cloud vCPU.",
    )
    cost_gb_month: float = Field(
        0.10,
        ge=0,
        description="Price of keeping one GB (10^9 bytes) for a month, for ClickHouse disk and artifacts in "
        "`driftloop cost`; 0.10 is about cloud block storage.",
    )
    serving_usage_seconds: float = Field(
        60.0,
        ge=0,
        description="How often a model server started by `python -m services.serving` records its requests "
        "and process CPU in ClickHouse (`serving_usage`, for `driftloop cost`); 0 records nothing.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual order (arguments, environment, dotenv, secrets), with the dotenv file that
        ``DRIFTLOOP_ENV_FILE`` names, read at each build so a test run can point it nowhere."""
        env_file = os.environ.get(ENV_FILE_VARIABLE, ".env")
        dotenv = DotEnvSettingsSource(settings_cls, env_file=env_file)
        return init_settings, env_settings, dotenv, file_secret_settings

    @model_validator(mode="after")
    def _local_token(self) -> Settings:
        """On a loopback registry, the token `driftloop up` wrote: the clients' token when none is set,
        and one more admin token the registry accepts. A registry elsewhere needs explicit tokens."""
        token = self.local_token()
        if token is None:
            return self
        if not self.registry_token.get_secret_value():
            self.registry_token = SecretStr(token)
        tokens = self.registry_tokens.get_secret_value()
        local = {token: LOCAL_TOKEN_PRINCIPAL}
        for service, principal in LOCAL_SERVICE_PRINCIPALS.items():
            if (own := self.local_token(service)) is not None:
                local[own] = principal
        if any(known not in tokens for known in local):
            self.registry_tokens = Secret({**tokens, **{k: v for k, v in local.items() if k not in tokens}})
        return self

    @property
    def local_token_path(self) -> Path:
        return self.data_dir / LOCAL_TOKEN_FILE

    def local_service_token_path(self, service: str) -> Path:
        return self.data_dir / f"{LOCAL_TOKEN_FILE}.{service}"

    def local_token(self, service: str | None = None) -> str | None:
        """The local admin token (or ``service``'s own) when the registry URL is loopback and the file
        exists; None otherwise."""
        if not is_loopback(urlsplit(self.registry_url).hostname or ""):
            return None
        path = self.local_token_path if service is None else self.local_service_token_path(service)
        try:
            token = path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        return token or None

    def registry_token_for(self, service: str) -> str:
        """The token ``service`` sends to the registry: its own local token where the client token is the
        local admin's (so its writes are audited as the service), otherwise the configured one."""
        configured = self.registry_token.get_secret_value()
        own = self.local_token(service)
        if own is not None and configured in ("", self.local_token()):
            return own
        return configured

    def as_env(self) -> dict[str, str]:
        """These settings as ``DRIFTLOOP_*`` variables (JSON for structured ones), to hand to a child process.

        Secrets are revealed here, and only here: a child process needs the value, not the mask.
        """
        dumped = self.model_dump(mode="json")
        for name in self.secret_fields():
            dumped[name] = getattr(self, name).get_secret_value()
        return {
            f"DRIFTLOOP_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in dumped.items()
        }

    @classmethod
    def secret_fields(cls) -> list[str]:
        """The names of the settings that hold secrets (masked wherever settings are shown)."""
        return [
            name
            for name, info in cls.model_fields.items()
            if info.annotation is not None and _is_secret(info.annotation)
        ]

    def shipped_secrets_exposed(
        self, names: list[str], *, listens_on: str | None = None, talks_to: tuple[str, ...] = ()
    ) -> list[str]:
        """Which of ``names`` still hold this repository's default while the service is reachable from
        another machine (``listens_on``, the address it binds) or uses them with one (``talks_to``, URLs)."""
        remote = (listens_on is not None and not is_loopback(listens_on)) or any(
            not is_loopback(urlsplit(url).hostname or "") for url in talks_to
        )
        if not remote:
            return []
        found = []
        for name in names:
            value, shipped = getattr(self, name).get_secret_value(), SHIPPED_SECRETS[name]
            if value == shipped or (isinstance(value, dict) and shipped in value):
                found.append(name)
        return found

    def refuse_shipped_secrets(
        self, service: str, names: list[str], *, listens_on: str | None = None, talks_to: tuple[str, ...] = ()
    ) -> None:
        """Stop a service from starting off loopback with a secret anyone can read in this repository."""
        exposed = self.shipped_secrets_exposed(names, listens_on=listens_on, talks_to=talks_to)
        if exposed:
            where = (
                f"listens on {listens_on}"
                if listens_on and not is_loopback(listens_on)
                else "talks to " + ", ".join(talks_to)
            )
            variables = ", ".join(f"DRIFTLOOP_{name.upper()}" for name in exposed)
            raise SystemExit(
                f"{service} {where} but {variables} still hold the default shipped with Driftloop, which "
                f"anyone can read: set your own before leaving loopback (docs/security.md)"
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
        return _resolved(self.data_dir / "artifacts").as_uri()

    @property
    def resolved_registry_database_url(self) -> str:
        if self.registry_database_url:
            return self.registry_database_url
        return f"sqlite:///{_resolved(self.data_dir / 'registry.db')}"


@functools.lru_cache(maxsize=64)
def _resolved(path: Path) -> Path:
    """``path`` made absolute with symlinks resolved, once per path: the registry asks for its artifact
    root several times per registration, and resolving costs a system call per folder."""
    return path.resolve()


def _is_secret(annotation: Any) -> bool:
    if annotation in (SecretStr,):
        return True
    origin = getattr(annotation, "__origin__", None)
    if origin is Annotated or hasattr(annotation, "__metadata__"):
        return _is_secret(annotation.__origin__)
    return (isinstance(annotation, type) and issubclass(annotation, Secret)) or origin is Secret
