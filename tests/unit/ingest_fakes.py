"""Fakes for the ingest tests (no tests here): an in-memory Kafka writer and a fixed feature schema."""

from __future__ import annotations

from collections.abc import Sequence

from services.ingest.domain.schemas import StaticSchemaSource
from services.ingest.errors import KafkaUnavailableError
from shared.feature_schema import FeatureSchema, FeatureSpec
from shared.sdk.batches import KeyedRecord

API_KEY = "test-key"

CHURN_SCHEMA = FeatureSchema(
    features=[
        FeatureSpec(name="age", type="numeric", nullable=False, min=0, max=120),
        FeatureSpec(name="plan", type="categorical", categories=["free", "pro"]),
    ]
)


def schema_source() -> StaticSchemaSource:
    """``churn`` has a schema (age numeric in [0, 120], plan free/pro), ``legacy`` has none, others unknown."""
    return StaticSchemaSource({"churn": CHURN_SCHEMA, "legacy": None})


class MemoryWriter:
    """Records what would go to Kafka; ``down = True`` simulates an unreachable broker."""

    def __init__(self) -> None:
        self.records: list[KeyedRecord] = []
        self.down = False

    async def write(self, records: Sequence[KeyedRecord]) -> None:
        if self.down and records:
            raise KafkaUnavailableError("broker down (test)")
        self.records.extend(records)

    def topic(self, name: str) -> list[KeyedRecord]:
        return [r for r in self.records if r[0] == name]
