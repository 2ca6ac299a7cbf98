"""Publishing ``ScaleAdvised`` events on the advice topic, acknowledged by the broker (acks=all)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared import codec
from shared.events import ScaleAdvised


class KafkaAdvicePublisher:
    """The service's ``AdvicePublisher``: one event per advice, keyed by its target, awaited."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def start(self) -> None:
        await self.producer.start()

    async def publish(self, event: ScaleAdvised) -> None:
        await self.producer.send_and_wait(self.topic, codec.encode(event), key=event.key)

    async def stop(self) -> None:
        await self.producer.stop()
