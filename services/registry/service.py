"""The registry as one object: its settings, its adapters (SQL store, resolve cache, artifacts, outbound
policy, outbox publisher, webhook sender) and who may call it. Built by :func:`..bootstrap.bootstrap`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine

from services.registry.adapters.artifacts import ArtifactFiles
from services.registry.adapters.outbound import OutboundPolicy
from services.registry.adapters.resolve_cache import ResolveCache
from services.registry.adapters.store import RegistryStore
from services.registry.adapters.webhooks import WebhookSender
from services.registry.domain.auth import Principal
from services.registry.domain.outbox import OutboxMessage, Published
from shared.dependencies import Dependencies
from shared.settings import Settings


class Publisher(Protocol):
    """Where the outbox relay sends rows (Kafka ``model-events`` in production)."""

    async def __call__(self, messages: Sequence[OutboxMessage]) -> Published: ...

    async def close(self) -> None: ...


@dataclass
class Registry:
    """What the routes and relays need, built once at start-up; the app serves it once migrated."""

    settings: Settings
    store: RegistryStore
    principals: dict[str, Principal]
    resolve_cache: ResolveCache
    outbound: OutboundPolicy
    engine: Engine
    artifacts: ArtifactFiles
    publish: Publisher
    webhooks: WebhookSender
    relays: bool = True
    """Whether the app runs the outbox relay and the webhook sender (off in tests and benchmarks)."""
    dependencies: Dependencies = field(default_factory=Dependencies)
