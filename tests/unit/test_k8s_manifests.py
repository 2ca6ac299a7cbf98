"""deploy/k8s validates offline: every object against Kubernetes' schemas or its operator's CRD, and every
cross-reference a schema cannot see. Each check is shown failing on a broken copy, so a pass means something."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.k8s_manifests import (
    CRDS,
    K8S,
    ROOT,
    Obj,
    all_checks,
    broken,
    containers,
    named,
    of_kind,
    render,
)

OVERLAYS = sorted(p.parent for p in K8S.glob("overlays/*/kustomization.yaml"))
FOLDERS = [K8S / "base", *OVERLAYS]
DOCS = (ROOT / "docs" / "operations.md").read_text()
CHECKS = all_checks(DOCS)


@functools.cache
def rendered(folder: Path) -> tuple[Obj, ...]:
    return tuple(render(folder))


def objects(folder: Path = K8S / "base") -> list[Obj]:
    return list(rendered(folder))


def test_there_is_an_example_overlay_to_copy() -> None:
    assert K8S / "overlays" / "example" in OVERLAYS


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(K8S)))
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_manifests_pass(folder: Path, check: str) -> None:
    assert CHECKS[check](objects(folder)) == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl (with its kustomize) to compare with")
@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(K8S)))
def test_the_renderer_agrees_with_kustomize(folder: Path) -> None:
    """The checks judge what `kubectl apply -k` would apply: kubectl's own kustomize renders the same."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=True, timeout=60
    )
    theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(built.stdout) if o}
    assert {(o["kind"], o["metadata"]["name"]): o for o in objects(folder)} == theirs


def test_the_overlay_changes_what_it_says() -> None:
    example = objects(K8S / "overlays" / "example")
    assert {o["metadata"].get("namespace") for o in example} == {"driftloop"}
    settings = named(example, "ConfigMap", "driftloop-settings")
    assert settings is not None and settings["data"]["DRIFTLOOP_S3_REGION"] == "eu-central-1"
    images = {c["image"] for o in example for c in containers(o)}
    assert images == {"registry.example.com/ml-platform/driftloop-services:0.1.0"}
    assert all(o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "driftloop" for o in example)


def test_every_crd_is_vendored_with_its_licence_and_version() -> None:
    notes = (CRDS / "README.md").read_text()
    assert (CRDS / "LICENSE-Apache-2.0.txt").is_file()
    for path in CRDS.glob("*.yaml"):
        assert f"`{path.name}`" in notes, f"{path.name}: say where it comes from in {CRDS}/README.md"


def _deployment(objs: list[Obj], name: str) -> Obj:
    found = named(objs, "Deployment", f"driftloop-{name}")
    assert found is not None
    return found


def _container(objs: list[Obj], name: str) -> Obj:
    return containers(_deployment(objs, name))[0]


def _env(objs: list[Obj], name: str, var: str) -> dict[str, Any]:
    return next(v for v in _container(objs, name)["env"] if v["name"] == var)


def _data(objs: list[Obj]) -> dict[str, str]:
    found = named(objs, "ConfigMap", "driftloop-settings")
    assert found is not None
    return found["data"]


def _topic(objs: list[Obj], name: str) -> Obj:
    found = named(objs, "KafkaTopic", name)
    assert found is not None
    return found


def _scaled(objs: list[Obj], name: str) -> Obj:
    found = named(objs, "ScaledObject", f"driftloop-{name}")
    assert found is not None
    return found


def _user(objs: list[Obj], name: str) -> Obj:
    found = named(objs, "KafkaUser", name)
    assert found is not None
    return found


Change = Callable[[list[Obj]], None]
BROKEN: list[tuple[str, str, Change, str]] = [
    # check, what is broken, how, a word of the problem reported
    (
        "schemas",
        "unknown Deployment field",
        lambda o: _deployment(o, "ingest")["spec"].update(replica=2),
        "replica",
    ),
    (
        "schemas",
        "probe port of the wrong type",
        lambda o: _container(o, "registry")["readinessProbe"]["httpGet"].update(port=[8000]),
        "port",
    ),
    (
        "schemas",
        "KafkaTopic partitions as text",
        lambda o: _topic(o, "labels")["spec"].update(partitions="six"),
        "six",
    ),
    (
        "schemas",
        "unknown ScaledObject field",
        lambda o: _scaled(o, "monitor")["spec"].update(maxReplicas=6),
        "maxReplicas",
    ),
    (
        "schemas",
        "Kafka listener of no known type",
        lambda o: of_kind(o, "Kafka")[0]["spec"]["kafka"]["listeners"][0].update(type="public"),
        "public",
    ),
    (
        "schemas",
        "ClickHouse layout misspelled",
        lambda o: of_kind(o, "ClickHouseInstallation")[0]["spec"]["configuration"]["clusters"][0][
            "layout"
        ].update(shards=2),
        "shards",
    ),
    (
        "schemas",
        "a kind without schema",
        lambda o: o.append({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "x"}}),
        "no schema",
    ),
    (
        "workloads",
        "a service without Deployment",
        lambda o: o.remove(_deployment(o, "trainer")),
        "services.trainer",
    ),
    (
        "workloads",
        "no memory limit",
        lambda o: _container(o, "monitor")["resources"]["limits"].pop("memory"),
        "limits.memory",
    ),
    ("workloads", "a second image", lambda o: _container(o, "ingest").update(image="other"), "image"),
    (
        "probes",
        "probe on an undeclared port",
        lambda o: _container(o, "ingest")["livenessProbe"]["httpGet"].update(port=9999),
        "9999",
    ),
    (
        "probes",
        "probe on a path the service lacks",
        lambda o: _container(o, "model-server")["readinessProbe"]["httpGet"].update(path="/ready"),
        "/ready",
    ),
    (
        "probes",
        "exec probe on the wrong port",
        lambda o: _data(o).update(DRIFTLOOP_MONITOR_WEB_PORT="7000"),
        "7000",
    ),
    (
        "probes",
        "exec probe on the wrong path",
        lambda o: _container(o, "trainer")["readinessProbe"]["exec"]["command"].__setitem__(
            2, "urlopen('http://127.0.0.1:6067/healthz')"
        ),
        "/healthz",
    ),
    (
        "services",
        "selector matching nothing",
        lambda o: named(o, "Service", "driftloop-ingest")["spec"]["selector"].update(tier="web"),
        "matches no",
    ),  # type: ignore[index]
    (
        "services",
        "targetPort the pods lack",
        lambda o: named(o, "Service", "driftloop-registry")["spec"]["ports"][0].update(targetPort="web"),
        "web",
    ),  # type: ignore[index]
    (
        "disruption_and_scaling",
        "no budget",
        lambda o: o.remove(named(o, "PodDisruptionBudget", "driftloop-monitor")),
        "PodDisruptionBudget",
    ),
    (
        "disruption_and_scaling",
        "HPA and KEDA on one Deployment",
        lambda o: named(o, "HorizontalPodAutoscaler", "driftloop-ingest")["spec"]["scaleTargetRef"].update(
            name="driftloop-monitor"
        ),
        "fight",
    ),  # type: ignore[index]
    (
        "settings",
        "a variable no setting reads",
        lambda o: _data(o).update(DRIFTLOOP_KAFKA_BROKERS="x:9092"),
        "DRIFTLOOP_KAFKA_BROKERS",
    ),
    (
        "settings",
        "a secret in the ConfigMap",
        lambda o: _data(o).update(DRIFTLOOP_CLICKHOUSE_PASSWORD="hunter2"),
        "secret",
    ),
    (
        "settings",
        "a secret value in env",
        lambda o: _container(o, "ingest")["env"].append({"name": "DRIFTLOOP_INGEST_API_KEYS", "value": "{}"}),
        "secretKeyRef",
    ),
    (
        "settings",
        "a committed Secret",
        lambda o: o.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
        "never committed",
    ),
    (
        "settings",
        "the laptop's ClickHouse",
        lambda o: _data(o).update(DRIFTLOOP_CLICKHOUSE_URL="http://127.0.0.1:8123"),
        "loopback",
    ),
    (
        "settings",
        "a value that does not build",
        lambda o: _data(o).update(DRIFTLOOP_KAFKA_SECURITY_PROTOCOL="TLS"),
        "do not build",
    ),
    (
        "secret_refs",
        "an undocumented Secret",
        lambda o: _env(o, "trainer", "DRIFTLOOP_REGISTRY_TOKEN")["valueFrom"]["secretKeyRef"].update(
            name="tokens"
        ),
        "tokens",
    ),
    (
        "secret_refs",
        "a key Strimzi does not write",
        lambda o: _env(o, "monitor", "DRIFTLOOP_KAFKA_SASL_PASSWORD")["valueFrom"]["secretKeyRef"].update(
            key="pass"
        ),
        "pass",
    ),
    (
        "kafka_endpoint",
        "bootstrap on the wrong port",
        lambda o: _data(o).update(DRIFTLOOP_KAFKA_BOOTSTRAP="driftloop-kafka-bootstrap:9092"),
        "9092",
    ),
    (
        "kafka_endpoint",
        "plain clients on a TLS listener",
        lambda o: _data(o).update(DRIFTLOOP_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT"),
        "tls",
    ),
    (
        "kafka_endpoint",
        "CA mounted elsewhere",
        lambda o: _data(o).update(DRIFTLOOP_KAFKA_SSL_CAFILE="/etc/ssl/ca.crt"),
        "not mounted",
    ),
    (
        "topics",
        "a topic prefix the topics lack",
        lambda o: _data(o).update(DRIFTLOOP_TOPIC_PREFIX="acme-"),
        "prefix",
    ),
    ("topics", "a topic missing", lambda o: o.remove(_topic(o, "dead-letter")), "dead-letter"),
    (
        "topics",
        "partitions unlike the setting",
        lambda o: _topic(o, "drift-events")["spec"].update(partitions=3),
        "partitions",
    ),
    (
        "acls",
        "an app allowed to write a validated topic",
        lambda o: _user(o, "apps")["spec"]["authorization"]["acls"].append(
            {"resource": {"type": "topic", "name": "predictions"}, "operations": ["Write"]}
        ),
        "acls.sh lacks",
    ),
    (
        "acls",
        "a rule of acls.sh left out",
        lambda o: _user(o, "ingest")["spec"]["authorization"]["acls"].pop(),
        "lack the rule",
    ),
    (
        "acls",
        "a service as another's user",
        lambda o: _env(o, "trainer", "DRIFTLOOP_KAFKA_SASL_USERNAME").update(value="monitor"),
        "password of Secret",
    ),
    (
        "lag_scalers",
        "the wrong consumer group",
        lambda o: _scaled(o, "monitor")["spec"]["triggers"][0]["metadata"].update(consumerGroup="monitor"),
        "consumes as",
    ),
    (
        "lag_scalers",
        "the group of a prefixed deployment",
        lambda o: _scaled(o, "trainer")["spec"]["triggers"][0]["metadata"].update(
            consumerGroup="acme-driftloop-trainer"
        ),
        "acme-",
    ),
    (
        "lag_scalers",
        "more workers than partitions",
        lambda o: _scaled(o, "trainer")["spec"].update(maxReplicaCount=7),
        "partitions",
    ),
    (
        "lag_scalers",
        "a topic the service does not read",
        lambda o: _scaled(o, "trainer")["spec"]["triggers"][1]["metadata"].update(topic="predictions"),
        "not a topic",
    ),
    (
        "lag_scalers",
        "another bootstrap",
        lambda o: _scaled(o, "monitor")["spec"]["triggers"][1]["metadata"].update(
            bootstrapServers="kafka:9092"
        ),
        "bootstrapServers",
    ),
    (
        "topics",
        "more replicas than brokers",
        lambda o: named(o, "KafkaNodePool", "broker")["spec"].update(replicas=2),  # type: ignore[index]
        "brokers",
    ),
    (
        "endpoints",
        "a ClickHouse password the installation does not use",
        lambda o: _env(o, "monitor", "DRIFTLOOP_CLICKHOUSE_PASSWORD")["valueFrom"]["secretKeyRef"].update(
            name="driftloop-s3"
        ),
        "not the Secret",
    ),
    (
        "endpoints",
        "ClickHouse URL of no installation",
        lambda o: _data(o).update(DRIFTLOOP_CLICKHOUSE_URL="http://clickhouse:8123"),
        "ClickHouseInstallation",
    ),
    (
        "endpoints",
        "a ClickHouse user the installation lacks",
        lambda o: _data(o).update(DRIFTLOOP_CLICKHOUSE_USER="default"),
        "no user",
    ),
    (
        "endpoints",
        "registry URL on another port",
        lambda o: _data(o).update(DRIFTLOOP_REGISTRY_URL="http://driftloop-registry:9000"),
        "9000",
    ),
]


def test_every_check_has_a_broken_case() -> None:
    assert {check for check, *_ in BROKEN} == set(CHECKS)


@pytest.mark.parametrize(
    ("check", "change", "expected"), [(c, f, e) for c, _, f, e in BROKEN], ids=[w for _, w, _, _ in BROKEN]
)
def test_a_broken_copy_fails_its_check(check: str, change: Change, expected: str) -> None:
    problems = CHECKS[check](broken(objects(), change))
    assert problems, f"{check} passed a broken copy"
    assert any(expected in p for p in problems), problems


def test_the_docs_show_how_to_apply_the_overlay() -> None:
    section = DOCS.split("## From `driftloop up` to a cluster", 1)[1].split("\n## ", 1)[0]
    assert "kubectl apply -k deploy/k8s/overlays/example" in section
    for key in yaml.safe_load((K8S / "base" / "settings.yaml").read_text())["data"]:
        assert f"`{key}`" in section, f"docs/operations.md does not say why the cluster sets {key}"
