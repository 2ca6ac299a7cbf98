"""A real single-node Apache Kafka broker (KRaft) run from Maven Central jars (topics: :mod:`shared.kafka.admin`).

No Docker and no tarball: ``deploy/kafka/pom.xml`` names the broker's jars, Maven copies them once into the
user's cache (``settings.cache_dir``), and ``java -cp '<lib>/*' kafka.Kafka`` runs the broker.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from driftloop.infra.jars import ensure_jars, pom_property, require_tool
from driftloop.infra.progress import Progress
from driftloop.process import (
    InfraError,
    ManagedProcess,
    ensure_port_free,
    port_open,
    spawn,
    wait_until,
)
from shared.kafka.admin import broker_ready
from shared.settings import Settings

KAFKA_POM = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "pom.xml"

LOG4J_PROPERTIES = """\
# Everything to stdout, which spawn() sends to the broker's log file.
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.kafka.request.logger=WARN
"""


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """The broker version the pom pins; read from the pom so the cache name cannot drift from it."""
    return pom_property(pom, "kafka.version")


def ensure_kafka_jars(
    settings: Settings | None = None, *, pom: Path = KAFKA_POM, progress: Progress | None = None
) -> Path:
    """The folder holding the broker's jars (``<cache_dir>/kafka-<version>/lib``), fetched by Maven once
    (telling ``progress``, stderr by default)."""
    settings = settings or Settings()
    require_tool("java", "the local Kafka broker (or point DRIFTLOOP_KAFKA_BOOTSTRAP at a running broker)")
    version = kafka_version(pom)
    return ensure_jars(
        pom,
        name="kafka",
        version=version,
        marker_jar=f"kafka_2.13-{version}.jar",
        cache_dir=settings.cache_dir,
        progress=progress,
    )


def _listener_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def render_server_properties(
    *, host: str, port: int, controller_port: int, log_dir: Path, partitions: int
) -> str:
    """``server.properties`` for one node that is both broker and KRaft controller, tuned for local use.

    Replication factors are 1 because there is one node; auto-created topics stay on so a producer's first
    message to a new topic is not refused; internal topics get few partitions so start-up is quick.
    """
    h = _listener_host(host)
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{h}:{controller_port}",
        "listeners": f"PLAINTEXT://{h}:{port},CONTROLLER://{h}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{h}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": str(partitions),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "10",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what ``random-uuid`` prints)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids these too: they read as a CLI flag
            return cluster_id


def _java_argv(lib: Path, log4j: Path, heap: str, main: str, *args: str) -> list[str]:
    return [
        "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true", f"-Dlog4j.configuration={log4j.as_uri()}",
        "-cp", f"{lib}/*", main, *args,
    ]  # fmt: skip


def _format_storage(lib: Path, data_dir: Path, config: Path, log4j: Path, log_dir: Path) -> None:
    """Format the metadata log once; the cluster id is kept in the data dir so restarts reuse it."""
    if (log_dir / "meta.properties").exists():
        return
    id_file = data_dir / "cluster.id"
    if not id_file.exists():
        id_file.write_text(new_cluster_id() + "\n")
    cluster_id = id_file.read_text().strip()
    argv = _java_argv(
        lib, log4j, "256m", "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
        "--ignore-formatted",
    )  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise InfraError(f"formatting Kafka storage in {log_dir} failed:\n{done.stdout}{done.stderr}")


def start_kafka(
    host: str,
    port: int,
    controller_port: int,
    data_dir: Path,
    log_path: Path,
    settings: Settings | None = None,
    timeout: float = 90.0,
    progress: Progress | None = None,
) -> ManagedProcess:
    """Start a broker+controller on ``host:port`` and return once a real client gets its metadata.

    Formats ``data_dir`` on first use and reuses it afterwards, so topics and offsets survive a restart.
    A first start fetches the broker's jars, telling ``progress`` (stderr by default).
    """
    settings = settings or Settings()
    lib = ensure_kafka_jars(settings, progress=progress)
    ensure_port_free("Kafka", host, port)
    ensure_port_free("the Kafka controller", host, controller_port)
    data_dir = data_dir.resolve()
    log_dir = data_dir / "data"
    log_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "server.properties"
    config.write_text(
        render_server_properties(
            host=host,
            port=port,
            controller_port=controller_port,
            log_dir=log_dir,
            partitions=settings.kafka_partitions,
        )
    )
    log4j = data_dir / "log4j.properties"
    log4j.write_text(LOG4J_PROPERTIES)
    _format_storage(lib, data_dir, config, log4j, log_dir)
    argv = _java_argv(lib, log4j, settings.kafka_heap, "kafka.Kafka", str(config))
    managed = spawn("kafka", argv, log_path.resolve(), cwd=data_dir)
    bootstrap = f"{_listener_host(host)}:{port}"
    try:
        wait_until(
            lambda: port_open(host, port) and broker_ready(bootstrap),
            timeout=timeout,
            what=f"Kafka broker on {bootstrap}",
            proc=managed.proc,
            log_path=managed.log_path,
            interval=0.25,
        )
    except BaseException:
        managed.stop()
        raise
    return managed
