"""The registry's metadata store, one module per concept; every write in one transaction with its outbox
event and audit row (see :mod:`.store_base`)."""

from __future__ import annotations

from services.registry.adapters.store_aliases import AliasStore, ResolvedAlias
from services.registry.adapters.store_audit import AuditStore
from services.registry.adapters.store_mlflow import MlflowStore
from services.registry.adapters.store_models import ModelStore
from services.registry.adapters.store_versions import VersionStore
from services.registry.adapters.store_webhooks import WebhookStore

__all__ = ["RegistryStore", "ResolvedAlias"]


class RegistryStore(ModelStore, VersionStore, AliasStore, AuditStore, WebhookStore, MlflowStore):
    """Registered models, versions, aliases, audit, webhooks and MLflow's lineage records in a SQL database."""
