"""What ingest knows of a feature schema: the lookup answer, the source port, a fixed map. No I/O.

The registry over HTTP is ``services.ingest.adapters.registry``; :class:`StaticSchemaSource` serves tests
and air-gapped deployments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shared.feature_schema import FeatureSchema, compile_check


class FeatureIssueLike(Protocol):
    """One problem with one feature, like ``shared.feature_schema.FeatureIssue``."""

    @property
    def feature(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def detail(self) -> str: ...


FeatureCheck = Callable[[Mapping[str, Any]], Sequence[FeatureIssueLike]]
LookupStatus = Literal["known", "no_schema", "unknown_model", "unavailable"]


@dataclass(frozen=True)
class SchemaLookup:
    """The answer for one model: its feature check when the registry has a schema for it."""

    status: LookupStatus
    check: FeatureCheck | None = None
    feature_names: tuple[str, ...] = ()


class SchemaSource(Protocol):
    async def lookup(self, model_name: str) -> SchemaLookup: ...


class StaticSchemaSource:
    """A fixed schema per model (tests, or an air-gapped deployment); other models get ``default``."""

    def __init__(
        self, schemas: Mapping[str, FeatureSchema | None], default: LookupStatus = "unknown_model"
    ) -> None:
        self._lookups = {
            name: lookup_from_schema(schema) if schema is not None else SchemaLookup("no_schema")
            for name, schema in schemas.items()
        }
        self._default = SchemaLookup(default)

    async def lookup(self, model_name: str) -> SchemaLookup:
        return self._lookups.get(model_name, self._default)


def lookup_from_schema(schema: FeatureSchema) -> SchemaLookup:
    """A known model's lookup: ``shared.feature_schema.check_features`` bound to its schema (compiled)."""
    return SchemaLookup("known", compile_check(schema), tuple(schema.names))
