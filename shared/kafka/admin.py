"""Topic administration and broker probes: the one place an admin client is built.

Sync wrappers exist for the CLI, fixtures and start-up code that has no event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from shared.kafka.clients import Endpoint, connection, consumer

T = TypeVar("T")


class KafkaAdminError(RuntimeError):
    """A topic change the broker refused; the message names the topics and the broker's error codes."""


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from sync code, even when the caller already runs an event loop (via a thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def _cluster_ready(bootstrap: Endpoint) -> bool:
    admin = AIOKafkaAdminClient(
        **connection(bootstrap).options(), request_timeout_ms=3000, client_id="driftloop-probe"
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
    return bool(cluster["brokers"])


def broker_ready(bootstrap: Endpoint) -> bool:
    """True when a client gets cluster metadata listing a live broker, i.e. topics can be created."""
    return run_sync(lambda: _cluster_ready(bootstrap))


@contextlib.asynccontextmanager
async def _admin(bootstrap: Endpoint, timeout_ms: int) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client for topic changes, closed on exit."""
    admin = AIOKafkaAdminClient(
        **connection(bootstrap).options(), request_timeout_ms=timeout_ms, client_id="driftloop-admin"
    )
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def acreate_topics(
    bootstrap: Endpoint, names: Iterable[str], partitions: int, replication: int, *, timeout_ms: int = 30000
) -> list[str]:
    """Create the topics that do not exist yet; returns the names it created (existing ones are fine)."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    async with _admin(bootstrap, timeout_ms) as admin:
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication) for name in wanted], timeout_ms=timeout_ms
        )
    created, failed = [], []
    for topic, code, *message in response.topic_errors:
        if code == 0:
            created.append(topic)
        elif code != TopicAlreadyExistsError.errno:
            failed.append(f"{topic}: error {code} {message[0] if message else ''}".rstrip())
    if failed:
        raise KafkaAdminError(
            f"could not create Kafka topics on {connection(bootstrap).bootstrap}: " + "; ".join(failed)
        )
    return created


def create_topics(bootstrap: Endpoint, names: Iterable[str], partitions: int, replication: int) -> list[str]:
    """Sync :func:`acreate_topics`, for the CLI and fixtures; idempotent."""
    return run_sync(lambda: acreate_topics(bootstrap, names, partitions, replication))


async def adelete_topics(bootstrap: Endpoint, names: Iterable[str], *, timeout_ms: int = 30000) -> None:
    """Delete topics (ones already gone are fine): a benchmark's topics should not outlive it."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    async with _admin(bootstrap, timeout_ms) as admin:
        response = await admin.delete_topics(wanted, timeout_ms=timeout_ms)
    failed = [
        f"{topic}: error {code}"
        for topic, code, *_ in response.topic_error_codes
        if code not in (0, UnknownTopicOrPartitionError.errno)
    ]
    if failed:
        raise KafkaAdminError(
            f"could not delete Kafka topics on {connection(bootstrap).bootstrap}: " + "; ".join(failed)
        )


def delete_topics(bootstrap: Endpoint, names: Iterable[str]) -> None:
    """Sync :func:`adelete_topics`."""
    run_sync(lambda: adelete_topics(bootstrap, names))


@dataclass(frozen=True)
class PartitionLag:
    """One partition of a consumer group: where the group is (``committed``) and where the log ends."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        """Records the group has not committed yet; a partition it never committed counts from offset 0."""
        return max(0, self.end - (self.committed or 0))


@dataclass(frozen=True)
class GroupLag:
    """A consumer group's position over its topics' partitions, and how many members it has now."""

    group: str
    members: int
    partitions: tuple[PartitionLag, ...]

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def end(self) -> int:
        return sum(p.end for p in self.partitions)

    @property
    def committed(self) -> int:
        return sum(p.committed or 0 for p in self.partitions)


class LagReader:
    """Reads consumer lag from the broker: committed offsets through the admin client, end offsets through
    a group-less consumer. Long-lived, so a poller does not reconnect at every reading; see :func:`consumer_lag`.
    """

    def __init__(self, bootstrap: Endpoint, *, timeout_ms: int = 10000) -> None:
        self._admin = AIOKafkaAdminClient(
            **connection(bootstrap).options(), request_timeout_ms=timeout_ms, client_id="driftloop-lag"
        )
        self._ends = consumer(
            bootstrap, group_id=None, request_timeout_ms=timeout_ms, client_id="driftloop-lag"
        )
        self._started = False

    async def start(self) -> None:
        if not self._started:
            await self._admin.start()
            await self._ends.start()
            self._started = True

    async def stop(self) -> None:
        self._started = False
        await self._ends.stop()
        await self._admin.close()

    async def read(self, group: str, topics: Iterable[str] | None = None) -> GroupLag:
        """Lag of ``group`` over every partition of ``topics`` (default: the topics it has committed on)."""
        await self.start()
        committed = await self._admin.list_consumer_group_offsets(group)
        wanted = sorted(set(topics) if topics is not None else {tp.topic for tp in committed})
        described = await self._admin.describe_topics(wanted) if wanted else []  # fresh: new partitions count
        partitions = sorted(
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if not t["error_code"]
            for p in t["partitions"]
        )
        ends = await self._ends.end_offsets(partitions) if partitions else {}
        rows = []
        for tp in partitions:
            position = committed.get(tp)
            offset = position.offset if position is not None and position.offset >= 0 else None
            rows.append(PartitionLag(tp.topic, tp.partition, offset, ends.get(tp, 0)))
        return GroupLag(group, await self._members(group), tuple(rows))

    async def _members(self, group: str) -> int:
        """Members of the group right now (0 when it is empty or unknown)."""
        responses = await self._admin.describe_consumer_groups([group])
        for response in responses:
            for described in response.groups:
                error_code, group_id, *_rest = described
                if group_id == group and not error_code:
                    return len(described[5])
        return 0


def consumer_lag(endpoint: Endpoint, group: str, topics: Iterable[str] | None = None) -> GroupLag:
    """One reading of ``group``'s lag per partition (sync, for the CLI and tests): committed vs end offsets."""

    async def once() -> GroupLag:
        reader = LagReader(endpoint)
        try:
            return await reader.read(group, topics)
        finally:
            await reader.stop()

    return run_sync(once)
