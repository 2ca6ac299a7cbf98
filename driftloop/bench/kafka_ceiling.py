"""The broker's own produce and consume ceiling, measured with Kafka's perf tools on Driftloop-like records.

``org.apache.kafka.tools.ProducerPerformance`` and ``ConsumerPerformance`` (what ``kafka-producer-perf-test.sh``
and ``kafka-consumer-perf-test.sh`` run) are Java clients with no Python in the way, so what they reach is
what the broker itself allows on this machine: the figure a Driftloop service's rate is a share of. They run
with ``java -cp`` on the broker's jars (``deploy/kafka/pom.xml``) plus the kafka-tools jar
(``deploy/kafka-tools/pom.xml``), on a topic with the partitions given, with the producer settings Driftloop's
own producers use (acks=all, idempotent, zstd) and payloads that are real encoded prediction events.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftloop.infra.jars import ensure_jars, pom_property
from driftloop.infra.kafka import ensure_kafka_jars
from driftloop.process import InfraError
from shared.settings import Settings

KAFKA_TOOLS_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka-tools" / "pom.xml"

PRODUCER_PROPS = {
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "zstd",
    "linger.ms": "20",
    "batch.size": str(1 << 20),
}
"""As Driftloop's producers send (``shared/kafka/clients.py``, the SDK's and ingest's zstd, 20 ms linger)."""

CONSUMER_PROPS = {
    "max.partition.fetch.bytes": str(16 * 1024 * 1024),
    "fetch.max.bytes": str(64 * 1024 * 1024),
}
"""As the monitor's consumer fetches (``services/monitor/entrypoints/stream.py:consumer_options``)."""

_QUIET_LOG4J = "".join(
    f"{line}\n"
    for line in (
        "log4j.rootLogger=WARN, stderr",
        "log4j.appender.stderr=org.apache.log4j.ConsoleAppender",
        "log4j.appender.stderr.Target=System.err",
        "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout",
        "log4j.appender.stderr.layout.ConversionPattern=%p %m (%c)%n",
    )
)

TOOL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class BrokerCeiling:
    """Events/s the broker took from one Java producer and gave to one Java consumer, and the record size."""

    produce_events_per_s: float
    consume_events_per_s: float
    records: int
    record_bytes: float
    partitions: int

    @property
    def events_per_s(self) -> float:
        """The lower of the two: the most a live stream can pass through this broker (in and out)."""
        return min(self.produce_events_per_s, self.consume_events_per_s)

    def share(self, events_per_s: float) -> float:
        """What part of the consume ceiling ``events_per_s`` is (a backlog drain is bound by consuming)."""
        return events_per_s / self.consume_events_per_s if self.consume_events_per_s else float("nan")


def ensure_kafka_tools_jars(settings: Settings) -> Path:
    """The folder holding the kafka-tools jar of the broker's version, fetched by Maven once."""
    version = pom_property(KAFKA_TOOLS_POM, "kafka.version")
    return ensure_jars(
        KAFKA_TOOLS_POM,
        name="kafka-tools",
        version=version,
        marker_jar=f"kafka-tools-{version}.jar",
        cache_dir=settings.cache_dir,
    )


def perf_classpath(settings: Settings) -> str:
    """``<broker lib>/*:<tools lib>/*``: the perf tools and everything they load."""
    return f"{ensure_kafka_jars(settings)}/*:{ensure_kafka_tools_jars(settings)}/*"


_PRODUCED = re.compile(r"(?P<sent>\d+) records sent, (?P<rate>[\d.]+) records/sec")


def parse_producer_summary(output: str) -> tuple[int, float]:
    """(records sent, records/s) from ProducerPerformance's last summary line.

    >>> parse_producer_summary("1000 records sent, 250.0 records/sec (0.24 MB/sec), 3.1 ms avg latency, ...")
    (1000, 250.0)
    """
    found = _PRODUCED.findall(output)
    if not found:
        raise InfraError(f"ProducerPerformance printed no summary:\n{output[-2000:]}")
    sent, rate = found[-1]
    return int(sent), float(rate)


def parse_consumer_summary(output: str) -> dict[str, float]:
    """ConsumerPerformance's summary row by column name (``fetch.nMsg.sec``: records/s after joining).

    >>> out = "start.time, end.time, data.consumed.in.nMsg, nMsg.sec, fetch.nMsg.sec\\n" \\
    ...       "2026-01-01 10:00:00:000, 2026-01-01 10:00:02:000, 1000, 500.0, 625.0\\n"
    >>> parse_consumer_summary(out)["fetch.nMsg.sec"]
    625.0
    """
    lines = [line for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if line.startswith("start.time"):
            names = [n.strip() for n in line.split(",")]
            values = [v.strip() for v in lines[i + 1].split(",")]
            return {n: float(v) for n, v in zip(names[2:], values[2:], strict=False)}
    raise InfraError(f"ConsumerPerformance printed no summary:\n{output[-2000:]}")


def _java(classpath: str, log4j: Path, main: str, *args: str) -> str:
    argv = [
        "java", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j.configuration={log4j.as_uri()}", "-cp", classpath, main, *args,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise InfraError(
            f"{main} failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done.stdout


def measure_broker_ceiling(
    settings: Settings, payloads: Sequence[bytes], *, records: int = 200_000, partitions: int | None = None
) -> BrokerCeiling:
    """Produce ``records`` records sampled from ``payloads`` as fast as the broker takes them, then consume
    them all, on a topic of its own (``partitions``, default the settings') that is deleted afterwards.

    ``payloads`` are encoded events (one line each: no newline inside), e.g. ``wire.encode(event)``.
    Only a PLAINTEXT broker is measured: the tools get no TLS or SASL settings.
    """
    from shared.kafka.admin import create_topics, delete_topics

    if settings.kafka_security_protocol != "PLAINTEXT":
        raise InfraError("the broker ceiling is measured on a PLAINTEXT broker only (the local stack's)")
    if not payloads or any(b"\n" in p for p in payloads):
        raise ValueError("payloads must be non-empty records without newlines")
    partitions = partitions or settings.kafka_partitions
    classpath = perf_classpath(settings)
    topic = f"{settings.topic_prefix}broker-ceiling-{uuid.uuid4().hex[:8]}"
    create_topics(settings.kafka_bootstrap, [topic], partitions, settings.kafka_replication_factor)
    try:
        with tempfile.TemporaryDirectory(prefix="driftloop-ceiling-") as tmp:
            folder = Path(tmp)
            log4j = folder / "log4j.properties"
            log4j.write_text(_QUIET_LOG4J)
            payload_file = folder / "payloads.txt"
            payload_file.write_bytes(b"\n".join(payloads))
            consumer_config = folder / "consumer.properties"
            consumer_config.write_text("".join(f"{k}={v}\n" for k, v in CONSUMER_PROPS.items()))
            produced = _java(
                classpath, log4j, "org.apache.kafka.tools.ProducerPerformance",
                "--topic", topic, "--num-records", str(records), "--throughput", "-1",
                "--payload-file", str(payload_file),
                "--producer-props", f"bootstrap.servers={settings.kafka_bootstrap}",
                *(f"{k}={v}" for k, v in PRODUCER_PROPS.items()),
            )  # fmt: skip
            sent, produce_rate = parse_producer_summary(produced)
            consumed = _java(
                classpath, log4j, "org.apache.kafka.tools.ConsumerPerformance",
                "--bootstrap-server", settings.kafka_bootstrap, "--topic", topic,
                "--messages", str(sent), "--timeout", "60000",
                "--group", f"{topic}-reader", "--consumer.config", str(consumer_config),
            )  # fmt: skip
            summary = parse_consumer_summary(consumed)
    finally:
        delete_topics(settings.kafka_bootstrap, [topic])
    if summary.get("data.consumed.in.nMsg", 0) < sent:
        raise InfraError(f"ConsumerPerformance read {summary.get('data.consumed.in.nMsg')} of {sent} records")
    return BrokerCeiling(
        produce_events_per_s=produce_rate,
        consume_events_per_s=summary["fetch.nMsg.sec"],
        records=sent,
        record_bytes=sum(len(p) for p in payloads) / len(payloads),
        partitions=partitions,
    )


def prediction_payloads(n: int = 5_000, features: int = 40) -> list[bytes]:
    """``n`` encoded prediction events as the SDK sends them; with 40 features about 930 bytes each."""
    from driftloop.bench import synthetic
    from shared import wire

    spec = synthetic.StreamSpec("bench-ceiling", features - features // 5, features // 5, seed=3)
    events = synthetic.predictions(spec, n, datetime.now(UTC), timedelta(milliseconds=6))
    return [wire.encode(e) for e in events]


def broker_ceiling_events_per_s(settings: Settings | None = None, records: int = 200_000) -> float:
    """The broker's ceiling (the lower of produce and consume events/s) on prediction-like records, for
    benchmarks that want one figure; the local broker is started for it if it is not running."""
    from driftloop.infra.stack import Component, local_stack

    settings = settings or Settings()
    with local_stack(settings, components=[Component.KAFKA]):
        run = settings.model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:8]}-"})
        return measure_broker_ceiling(run, prediction_payloads(), records=records).events_per_s
