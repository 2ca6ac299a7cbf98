"""Driftloop's producer SDK: publish prediction and label events from any Python app (docs/sdk.md).

``Driftloop`` (threads) and ``AsyncDriftloop`` (asyncio) log without blocking on the network, deliver to
Kafka with ``acks=all`` and idempotence, and keep events on local disk while the broker is unreachable.
"""

from shared.sdk.buffer import BufferStats
from shared.sdk.client import AsyncDriftloop, Driftloop
from shared.sdk.config import ProducerConfig
from shared.sdk.spool import SpoolLockedError

__all__ = ["AsyncDriftloop", "BufferStats", "Driftloop", "ProducerConfig", "SpoolLockedError"]
