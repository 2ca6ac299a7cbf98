"""Topic administration and broker probes: the one place an admin client is built.

Sync wrappers exist for the CLI, fixtures and start-up code that has no event loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from shared.kafka.clients import Endpoint, connection

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
