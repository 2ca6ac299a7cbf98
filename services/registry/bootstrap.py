"""The registry's composition root: the one place that reads settings and builds its adapters."""

from __future__ import annotations

from sqlalchemy import Engine

from services.registry.adapters.artifacts import ArtifactFiles
from services.registry.adapters.db import make_engine
from services.registry.adapters.kafka import KafkaPublisher
from services.registry.adapters.outbound import OutboundPolicy
from services.registry.adapters.resolve_cache import ResolveCache
from services.registry.adapters.store import RegistryStore
from services.registry.adapters.webhooks import WebhookSender
from services.registry.domain.auth import parse_tokens
from services.registry.service import Publisher, Registry
from shared.artifacts import allowed_roots
from shared.dependencies import Dependencies
from shared.settings import Settings
from shared.topics import topic_names


def bootstrap(
    settings: Settings | None = None,
    *,
    run_relays: bool | None = None,
    engine: Engine | None = None,
    artifacts: ArtifactFiles | None = None,
    outbound: OutboundPolicy | None = None,
    publish: Publisher | None = None,
) -> Registry:
    """The registry wired to its database, artifact store, Kafka and webhook targets; tests pass fakes.

    Nothing connects here (engines, producers and stores connect on first use); a bad artifact prefix,
    allowed webhook host or token role raises, naming the setting.
    """
    settings = settings or Settings()
    allowed_roots(settings)  # a bad DRIFTLOOP_ARTIFACT_ALLOWED_PREFIXES entry stops start-up, naming it
    OutboundPolicy.from_settings(settings, resolver=lambda _host, _port: [])  # and so does a bad allowed host
    principals = parse_tokens(settings.registry_tokens.get_secret_value())
    if outbound is None:
        outbound = OutboundPolicy.from_settings(settings)  # resolves the stack's hosts
    if engine is None:
        if settings.resolved_registry_database_url.startswith("sqlite"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_registry_database_url)
    dependencies = Dependencies()
    store = RegistryStore(engine)
    return Registry(
        settings=settings,
        store=store,
        principals=principals,
        resolve_cache=ResolveCache(engine, store),
        outbound=outbound,
        engine=engine,
        artifacts=artifacts or ArtifactFiles(settings),
        publish=publish or KafkaPublisher(settings, topic_names(settings.topic_prefix).model_events),
        webhooks=WebhookSender(
            engine,
            max_attempts=settings.registry_webhook_max_attempts,
            dependencies=dependencies,
            policy=outbound,
        ),
        relays=settings.registry_relay_enabled if run_relays is None else run_relays,
        dependencies=dependencies,
    )
