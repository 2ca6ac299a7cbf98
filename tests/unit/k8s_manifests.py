"""Render deploy/k8s offline and check it: schemas (Kubernetes' and the operators' CRDs) and the
cross-references no schema sees (selectors, probe ports, settings, consumer groups, topics, ACLs).

Each ``check_*`` returns the problems it found, as sentences a reader can act on; an empty list is a pass.
tests/unit/test_k8s_manifests.py runs them on every overlay, and on broken copies to show each can fail.
"""

from __future__ import annotations

import copy
import functools
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import yaml

from services.monitor.entrypoints.stream import consumer_options
from shared.settings import Settings
from shared.topics import topic_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRDS = K8S / "crds"
KUBERNETES_VERSION = "1.33"
"""The oldest Kubernetes the manifests are written for (autoscaling/v2, policy/v1, sidecar-free)."""

Obj = dict[str, Any]
Check = Callable[[list[Obj]], list[str]]

# ---------------------------------------------------------------------------------------------- rendering

SUPPORTED_KUSTOMIZE_FIELDS = {"apiVersion", "kind", "resources", "labels", "namespace", "images", "patches"}


def render(folder: Path) -> list[Obj]:
    """The objects ``kustomize build folder`` makes, for the subset of kustomize these manifests use:
    resources (files and folders), labels (metadata only), JSON 6902 patches by kind and name, images and
    namespace. A field outside that subset fails loudly instead of being ignored."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unsupported = set(spec) - SUPPORTED_KUSTOMIZE_FIELDS
    if unsupported:
        raise NotImplementedError(f"{folder}: kustomize fields {sorted(unsupported)} are not rendered here")
    objects: list[Obj] = []
    for resource in spec.get("resources", []):
        path = folder / resource
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in spec.get("patches", []):
        targets = [o for o in objects if _selected(o, patch["target"])]
        if not targets:
            raise ValueError(f"{folder}: patch {patch['path']} matches no object ({patch['target']})")
        for obj in targets:
            for op in yaml.safe_load((folder / patch["path"]).read_text()):
                _json_patch(obj, op)
    for label in spec.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise NotImplementedError("labels with includeSelectors/includeTemplates are not rendered here")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in spec.get("images", []):
        for container in (c for o in objects for c in containers(o)):
            name = re.split(r"[:@]", container["image"], maxsplit=1)[0]
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    if "namespace" in spec:
        for obj in objects:
            obj["metadata"]["namespace"] = spec["namespace"]
    return objects


def _selected(obj: Obj, target: dict[str, str]) -> bool:
    return all(
        {"kind": obj["kind"], "name": obj["metadata"]["name"]}.get(key) == value
        for key, value in target.items()
    )


def _json_patch(obj: Obj, op: dict[str, Any]) -> None:
    """One RFC 6902 operation (add, replace, remove) on ``obj``."""
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if op["op"] == "remove":
        del node[int(last) if isinstance(node, list) else last]
    elif op["op"] == "replace":
        if (int(last) >= len(node)) if isinstance(node, list) else (last not in node):
            raise KeyError(f"replace {op['path']}: nothing there")
        node[int(last) if isinstance(node, list) else last] = op["value"]
    elif op["op"] == "add":
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), op["value"])
        else:
            node[last] = op["value"]
    else:
        raise NotImplementedError(f"patch op {op['op']}")


# ---------------------------------------------------------------------------------------------- accessors


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj | None:
    return next((o for o in of_kind(objects, kind) if o["metadata"]["name"] == name), None)


def containers(obj: Obj) -> list[Obj]:
    if obj["kind"] != "Deployment":
        return []
    pod = obj["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def service_module(container: Obj) -> str:
    """``services.monitor`` for ``python -m services.monitor ...``."""
    command = container.get("command", [])
    return command[2] if command[:2] == ["python", "-m"] and len(command) > 2 else ""


def settings_env(objects: list[Obj], container: Obj | None = None) -> dict[str, str]:
    """The DRIFTLOOP_* values a container gets literally: the ConfigMaps it reads, then its own ``env``."""
    env: dict[str, str] = {}
    sources = (
        container.get("envFrom", []) if container else [{"configMapRef": {"name": "driftloop-settings"}}]
    )
    for source in sources:
        ref = source.get("configMapRef", {}).get("name")
        if (config := named(objects, "ConfigMap", ref)) is not None:
            env.update(config.get("data", {}))
    for var in container.get("env", []) if container else []:
        if "value" in var:
            env[var["name"]] = var["value"]
    return env


def settings_of(env: dict[str, str]) -> Settings:
    """The Settings a service builds from this environment (and nothing else: no .env, no process env)."""
    return Settings(**{k.removeprefix("DRIFTLOOP_").lower(): v for k, v in env.items()})


def cluster_settings(objects: list[Obj]) -> Settings:
    return settings_of(settings_env(objects))


def deployments_by_module(objects: list[Obj]) -> dict[str, list[tuple[Obj, Obj]]]:
    out: dict[str, list[tuple[Obj, Obj]]] = {}
    for deployment in of_kind(objects, "Deployment"):
        for container in containers(deployment):
            out.setdefault(service_module(container), []).append((deployment, container))
    return out


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(deployment: Obj) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"].get("labels", {}))


def _ports(deployment: Obj) -> set[str | int]:
    return {
        p
        for c in containers(deployment)
        for port in c.get("ports", [])
        for p in (port.get("name"), port["containerPort"])
        if p
    }


# ---------------------------------------------------------------------------------------------- schemas


def _closed(schema: Any) -> Any:
    """An openAPIV3Schema that rejects unknown fields as the API server's strict field validation does:
    ``additionalProperties: false`` wherever properties are listed and unknown fields are not preserved."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _closed(v) if k != "properties" else {p: _closed(s) for p, s in v.items()}
        for k, v in schema.items()
    }
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> closed schema, from every CRD committed in deploy/k8s/crds."""
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schemas[(f"{group}/{version['name']}", kind)] = _closed(
                        version["schema"]["openAPIV3Schema"]
                    )
    return schemas


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_schemas(objects: list[Obj]) -> list[str]:
    """Core kinds against Kubernetes' schemas (strict), custom kinds against their CRD's schema."""
    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        name = obj.get("metadata", {}).get("name", "")
        if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
            problems.append(f"{where}: the name is not a DNS subdomain")
        schema = crd_schemas().get((obj.get("apiVersion", ""), obj.get("kind", "")))
        if schema is not None:
            error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(obj))
            if error is not None:
                problems.append(f"{where}: {'.'.join(map(str, error.absolute_path))}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{where}: no schema for {obj.get('apiVersion')} {obj.get('kind')}: add its CRD to {CRDS}"
            )
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return problems


# ---------------------------------------------------------------------------------------------- workloads

# every service of the repository needs a Deployment: a new service cannot be forgotten here
SERVICES = {
    f"services.{folder.name}"
    for folder in (Path(__file__).resolve().parents[2] / "services").iterdir()
    if (folder / "__main__.py").is_file()
}


def check_workloads(objects: list[Obj]) -> list[str]:
    """Every service runs, from the one image, a module that exists, with probes and resources."""
    problems = []
    modules = deployments_by_module(objects)
    for missing in sorted(SERVICES - set(modules)):
        problems.append(f"no Deployment runs python -m {missing}")
    images = {c["image"] for pairs in modules.values() for _, c in pairs}
    if len(images) > 1:
        problems.append(
            f"the services run from more than one image: {sorted(images)} (deploy/Dockerfile makes one)"
        )
    for module, pairs in modules.items():
        for deployment, container in pairs:
            where = f"Deployment/{deployment['metadata']['name']} container {container['name']}"
            if module not in SERVICES:
                problems.append(f"{where}: runs {container.get('command')}, not python -m services.<service>")
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{where}: no {probe}")
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory") if kind == "requests" else ("memory",):
                    if resource not in container.get("resources", {}).get(kind, {}):
                        problems.append(f"{where}: no {kind}.{resource}")
    return problems


HEALTH_ROUTE = re.compile(r"""(?:add_get|\.get)\(\s*["'](/[a-z]+)["']""")


def _routes(module: str) -> set[str]:
    """The GET paths a service's entrypoints/http.py declares (FastAPI ``@app.get``/aiohttp ``add_get``)."""
    http = ROOT / module.replace(".", "/") / "entrypoints" / "http.py"
    return set(HEALTH_ROUTE.findall(http.read_text())) if http.is_file() else set()


PROBE_URL = re.compile(r"http://127\.0\.0\.1:(\d+)(/[a-z]+)")
WEB_PORT_SETTING = {
    "services.monitor": "monitor_web_port",
    "services.trainer": "trainer_web_port",
    "services.advisor": "advisor_web_port",
}


def check_probes(objects: list[Obj]) -> list[str]:
    """Every probe asks a port the container declares (or, inside the container, the port its settings
    give the health page) for a path the service really serves."""
    problems = []
    for deployment in of_kind(objects, "Deployment"):
        ports = _ports(deployment)
        for container in containers(deployment):
            module = service_module(container)
            routes = _routes(module)
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                where = f"Deployment/{deployment['metadata']['name']} {kind}"
                for action in ("httpGet", "tcpSocket"):
                    if action in probe and probe[action]["port"] not in ports:
                        problems.append(
                            f"{where}: port {probe[action]['port']} is no declared container port"
                        )
                if "httpGet" in probe and probe["httpGet"].get("path") not in routes:
                    problems.append(
                        f"{where}: {module} serves no {probe['httpGet'].get('path')} (it has {sorted(routes)})"
                    )
                if "exec" in probe:
                    found = PROBE_URL.search(" ".join(probe["exec"]["command"]))
                    setting = WEB_PORT_SETTING.get(module)
                    if found is None or setting is None:
                        problems.append(
                            f"{where}: an exec probe must ask http://127.0.0.1:<web port>/<path> of a worker"
                        )
                        continue
                    port = getattr(settings_of(settings_env(objects, container)), setting)
                    if int(found.group(1)) != port:
                        problems.append(
                            f"{where}: asks port {found.group(1)} but DRIFTLOOP_{setting.upper()} is {port}"
                        )
                    if found.group(2) not in routes:
                        problems.append(
                            f"{where}: {module} serves no {found.group(2)} (it has {sorted(routes)})"
                        )
    return problems


def check_services(objects: list[Obj]) -> list[str]:
    """Every Service selects the pods of a Deployment and sends traffic to a port they declare."""
    problems = []
    for service in of_kind(objects, "Service"):
        selector = service["spec"].get("selector", {})
        chosen = [d for d in of_kind(objects, "Deployment") if _matches(selector, _pod_labels(d))]
        where = f"Service/{service['metadata']['name']}"
        if not chosen:
            problems.append(f"{where}: its selector {selector} matches no Deployment's pods")
            continue
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if any(target not in _ports(d) for d in chosen):
                problems.append(f"{where}: targetPort {target} is not a port of the pods it selects")
    return problems


def check_disruption_and_scaling(objects: list[Obj]) -> list[str]:
    """Each Deployment has a PodDisruptionBudget and exactly one scaler that targets it (an HPA, or KEDA's
    ScaledObject for the Kafka consumers); every budget and scaler names a Deployment that exists."""
    problems = []
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    for budget in of_kind(objects, "PodDisruptionBudget"):
        selector = budget["spec"]["selector"].get("matchLabels", {})
        if not any(_matches(selector, _pod_labels(d)) for d in deployments.values()):
            problems.append(f"PodDisruptionBudget/{budget['metadata']['name']}: selects no Deployment's pods")
    for name, deployment in deployments.items():
        budgets = [
            b
            for b in of_kind(objects, "PodDisruptionBudget")
            if _matches(b["spec"]["selector"].get("matchLabels", {}), _pod_labels(deployment))
        ]
        if not budgets:
            problems.append(f"Deployment/{name}: no PodDisruptionBudget")
    scalers: dict[str, list[str]] = {}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        scalers.setdefault(hpa["spec"]["scaleTargetRef"]["name"], []).append(f"HPA/{hpa['metadata']['name']}")
    for scaled in of_kind(objects, "ScaledObject"):
        scalers.setdefault(scaled["spec"]["scaleTargetRef"]["name"], []).append(
            f"ScaledObject/{scaled['metadata']['name']}"
        )
    for target, by in scalers.items():
        if target not in deployments:
            problems.append(f"{', '.join(by)}: scales {target}, which is no Deployment")
        elif len(by) > 1:
            problems.append(f"Deployment/{target}: scaled by {by}; they would fight")
    wanted = {
        "services.monitor": "ScaledObject",
        "services.trainer": "ScaledObject",
        "services.ingest": "HPA",
        "services.serving": "HPA",
    }
    for module, pairs in deployments_by_module(objects).items():
        for deployment, _ in pairs:
            by = scalers.get(deployment["metadata"]["name"], [])
            if module in wanted and not any(b.startswith(wanted[module] + "/") for b in by):
                problems.append(
                    f"Deployment/{deployment['metadata']['name']}: {module} should be scaled by a {wanted[module]}"
                )
    return problems


# ---------------------------------------------------------------------------------------------- settings

KNOWN_SETTINGS = {f"DRIFTLOOP_{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {f"DRIFTLOOP_{name.upper()}" for name in Settings.secret_fields()}


def check_settings(objects: list[Obj]) -> list[str]:
    """Every variable is a real setting, the values build Settings, nothing points at loopback, and no
    secret setting has a value in the manifests: secrets come from Secrets."""
    problems = []
    for config in of_kind(objects, "ConfigMap"):
        for key in config.get("data", {}):
            if key not in KNOWN_SETTINGS:
                problems.append(
                    f"ConfigMap/{config['metadata']['name']}: {key} is no setting (shared/settings.py)"
                )
            if key in SECRET_SETTINGS:
                problems.append(
                    f"ConfigMap/{config['metadata']['name']}: {key} is a secret: take it from a Secret"
                )
    for secret in of_kind(objects, "Secret"):
        problems.append(
            f"Secret/{secret['metadata']['name']}: secret values are never committed; create it in the cluster"
        )
    for deployment in of_kind(objects, "Deployment"):
        for container in containers(deployment):
            where = f"Deployment/{deployment['metadata']['name']} container {container['name']}"
            for var in container.get("env", []):
                if var["name"] not in KNOWN_SETTINGS:
                    problems.append(f"{where}: {var['name']} is no setting (shared/settings.py)")
                if var["name"] in SECRET_SETTINGS and "value" in var:
                    problems.append(f"{where}: {var['name']} is a secret with a value here: use secretKeyRef")
            try:
                settings = settings_of(settings_env(objects, container))
            except ValueError as exc:
                problems.append(f"{where}: the settings do not build: {exc}")
                continue
            if settings.kafka_is_local or settings.clickhouse_is_local or settings.s3_is_local:
                problems.append(
                    f"{where}: Kafka, ClickHouse or S3 is a loopback address (the laptop's defaults)"
                )
    return problems


def secret_refs(objects: list[Obj]) -> Iterator[tuple[str, str, str]]:
    """(who, secret name, key) for every reference to a Secret in the manifests."""

    def walk(node: Any, who: str) -> Iterator[tuple[str, str, str]]:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                yield who, node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]
            if "secretName" in node:
                for item in node.get("items", [{"key": "*"}]):
                    yield who, node["secretName"], item["key"]
            for child in node.values():
                yield from walk(child, who)
        elif isinstance(node, list):
            for child in node:
                yield from walk(child, who)

    for obj in objects:
        who = f"{obj['kind']}/{obj['metadata']['name']}"
        yield from walk(obj, who)
        for ref in (
            obj.get("spec", {}).get("secretTargetRef", []) if obj["kind"] == "TriggerAuthentication" else []
        ):
            yield who, ref["name"], ref["key"]


def check_secret_refs(objects: list[Obj], documented: str) -> list[str]:
    """Every Secret named is made by an operator (a KafkaUser's, Strimzi's cluster CA) or is one the
    operator creates by hand, named with its key in ``documented`` (docs/operations.md)."""
    problems = []
    users = {u["metadata"]["name"] for u in of_kind(objects, "KafkaUser")}
    cas = {f"{k['metadata']['name']}-cluster-ca-cert" for k in of_kind(objects, "Kafka")}
    for who, name, key in secret_refs(objects):
        if name in users:
            if key != "password":
                problems.append(f"{who}: Strimzi's Secret {name} has the key password, not {key}")
        elif name in cas:
            if key != "ca.crt":
                problems.append(f"{who}: Strimzi's cluster CA Secret {name} has the key ca.crt, not {key}")
        elif not re.search(rf"`{re.escape(name)}`[^\n]*`{re.escape(key)}`", documented):
            problems.append(
                f"{who}: Secret {name} (key {key}) is not in docs/operations.md's list of Secrets to create"
            )
    return problems


# ---------------------------------------------------------------------------------------------- Kafka


WITHOUT_KAFKA = {"services.console"}
"""Services that never connect to Kafka (the console reads the registry and ClickHouse): no Kafka user."""


def check_kafka_endpoint(objects: list[Obj]) -> list[str]:
    """DRIFTLOOP_KAFKA_BOOTSTRAP is the Strimzi bootstrap Service on a listener whose TLS and
    authentication are those the clients are configured for, and the CA file is mounted where they read it."""
    settings = cluster_settings(objects)
    host, port = settings.kafka_host_port
    clusters = {f"{k['metadata']['name']}-kafka-bootstrap": k for k in of_kind(objects, "Kafka")}
    if host not in clusters:
        return [
            f"DRIFTLOOP_KAFKA_BOOTSTRAP {settings.kafka_bootstrap}: no Strimzi Kafka has that bootstrap Service"
        ]
    listener = next((x for x in clusters[host]["spec"]["kafka"]["listeners"] if x["port"] == port), None)
    if listener is None:
        return [
            f"DRIFTLOOP_KAFKA_BOOTSTRAP {settings.kafka_bootstrap}: the Kafka has no listener on port {port}"
        ]
    problems = []
    tls = settings.kafka_security_protocol in ("SSL", "SASL_SSL")
    sasl = settings.kafka_security_protocol.startswith("SASL")
    if listener["tls"] != tls:
        problems.append(
            f"listener {listener['name']}: tls {listener['tls']} but DRIFTLOOP_KAFKA_SECURITY_PROTOCOL is {settings.kafka_security_protocol}"
        )
    authentication = listener.get("authentication", {}).get("type")
    if sasl != (authentication == "scram-sha-512") or (
        sasl and settings.kafka_sasl_mechanism != "SCRAM-SHA-512"
    ):
        problems.append(
            f"listener {listener['name']}: authentication {authentication} but the clients use {settings.kafka_security_protocol} {settings.kafka_sasl_mechanism}"
        )
    if tls:
        cafile = Path(settings.kafka_ssl_cafile)
        for deployment in of_kind(objects, "Deployment"):
            volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes", [])}
            for container in containers(deployment):
                if service_module(container) in WITHOUT_KAFKA:
                    continue
                mounted = any(
                    Path(m["mountPath"]) == cafile.parent
                    and volumes.get(m["name"], {}).get("secret", {}).get("secretName")
                    == f"{clusters[host]['metadata']['name']}-cluster-ca-cert"
                    for m in container.get("volumeMounts", [])
                )
                if not mounted:
                    problems.append(
                        f"Deployment/{deployment['metadata']['name']}: the cluster CA is not mounted at {cafile.parent}"
                    )
    return problems


def check_topics(objects: list[Obj]) -> list[str]:
    """The KafkaTopics are exactly shared/topics.py's for the configured prefix, with the configured
    partitions and replication, in a Kafka that exists."""
    settings = cluster_settings(objects)
    problems = []
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in of_kind(objects, "KafkaTopic")}
    wanted = set(topic_names(settings.topic_prefix).all())
    if set(topics) != wanted:
        problems.append(
            f"KafkaTopics {sorted(set(topics) ^ wanted)} differ from shared/topics.py with prefix {settings.topic_prefix!r}"
        )
    kafkas = {k["metadata"]["name"] for k in of_kind(objects, "Kafka")}
    brokers = sum(
        pool["spec"]["replicas"]
        for pool in of_kind(objects, "KafkaNodePool")
        if "broker" in pool["spec"]["roles"]
    )
    if settings.kafka_replication_factor > brokers:
        problems.append(
            f"DRIFTLOOP_KAFKA_REPLICATION_FACTOR {settings.kafka_replication_factor} > the {brokers} brokers of the node pools"
        )
    for name, topic in topics.items():
        if topic["spec"].get("partitions") != settings.kafka_partitions:
            problems.append(
                f"KafkaTopic {name}: {topic['spec'].get('partitions')} partitions, DRIFTLOOP_KAFKA_PARTITIONS is {settings.kafka_partitions}"
            )
        if topic["spec"].get("replicas") != settings.kafka_replication_factor:
            problems.append(
                f"KafkaTopic {name}: {topic['spec'].get('replicas')} replicas, DRIFTLOOP_KAFKA_REPLICATION_FACTOR is {settings.kafka_replication_factor}"
            )
        if topic["metadata"].get("labels", {}).get("strimzi.io/cluster") not in kafkas:
            problems.append(f"KafkaTopic {name}: its strimzi.io/cluster label names no Kafka")
    for user in of_kind(objects, "KafkaUser"):
        if user["metadata"].get("labels", {}).get("strimzi.io/cluster") not in kafkas:
            problems.append(
                f"KafkaUser {user['metadata']['name']}: its strimzi.io/cluster label names no Kafka"
            )
    return problems


Acl = tuple[str, str, str, str, str]


def script_acls(prefix: str) -> set[Acl]:
    """(user, resource type, name, pattern, operation) for every rule deploy/kafka/acls.sh adds."""
    out = subprocess.run(
        ["bash", str(ROOT / "deploy" / "kafka" / "acls.sh")],
        env={"DRY_RUN": "1", "PREFIX": prefix, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rules = set()
    for line in out.splitlines():
        args = shlex.split(line)
        user = args[args.index("--allow-principal") + 1].removeprefix("User:")
        operations = [args[i + 1] for i, a in enumerate(args) if a == "--operation"]
        pattern = "literal"
        if (
            "--resource-pattern-type" in args
            and args[args.index("--resource-pattern-type") + 1] == "prefixed"
        ):
            pattern = "prefix"
        for flag, kind in (("--topic", "topic"), ("--group", "group")):
            for name in (args[i + 1] for i, a in enumerate(args) if a == flag):
                rules |= {(user, kind, name, pattern, op) for op in operations}
    return rules


def manifest_acls(objects: list[Obj]) -> set[Acl]:
    rules = set()
    for user in of_kind(objects, "KafkaUser"):
        for acl in user["spec"].get("authorization", {}).get("acls", []):
            resource = acl["resource"]
            rules |= {
                (
                    user["metadata"]["name"],
                    resource["type"],
                    resource["name"],
                    resource.get("patternType", "literal"),
                    op,
                )
                for op in acl["operations"]
            }
    return rules


def check_acls(objects: list[Obj]) -> list[str]:
    """The KafkaUsers' ACLs are deploy/kafka/acls.sh's, rule for rule, and each service connects as the
    user of its own name with that user's Strimzi-made password."""
    settings = cluster_settings(objects)
    problems = []
    script, manifests = script_acls(settings.topic_prefix), manifest_acls(objects)
    for rule in sorted(script - manifests):
        problems.append(f"KafkaUsers lack the rule of deploy/kafka/acls.sh {rule}")
    for rule in sorted(manifests - script):
        problems.append(f"KafkaUsers have a rule deploy/kafka/acls.sh lacks {rule}")
    users = {u["metadata"]["name"] for u in of_kind(objects, "KafkaUser")}
    for deployment in of_kind(objects, "Deployment"):
        for container in containers(deployment):
            env = {v["name"]: v for v in container.get("env", [])}
            if service_module(container) in WITHOUT_KAFKA and not any("KAFKA" in name for name in env):
                continue
            user = env.get("DRIFTLOOP_KAFKA_SASL_USERNAME", {}).get("value")
            ref = env.get("DRIFTLOOP_KAFKA_SASL_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
            where = f"Deployment/{deployment['metadata']['name']}"
            if user not in users:
                problems.append(f"{where}: Kafka user {user!r} is no KafkaUser")
            elif ref.get("name") != user:
                problems.append(f"{where}: connects as {user} with the password of Secret {ref.get('name')}")
    return problems


def _capture_consumer(module: Any, build: Callable[[], Any]) -> tuple[str, tuple[str, ...]]:
    """(group id, topics) of the consumer ``build`` makes, with the module's Kafka consumer factory replaced."""
    seen: dict[str, Any] = {}

    def fake(settings: Any, *topics: str, group_id: str | None, **options: Any) -> None:
        seen.update(group=group_id, topics=topics)

    original = module.kafka_consumer
    module.kafka_consumer = fake
    try:
        build()
    finally:
        module.kafka_consumer = original
    return seen["group"], seen["topics"]


def consumer_groups(settings: Settings) -> dict[str, tuple[str, tuple[str, ...]]]:
    """service module -> (group id, topics) of its consumer, as the services' own code builds them."""
    import services.ingest.bootstrap as ingest
    import services.trainer.bootstrap as trainer
    from tests.unit.ingest_fakes import MemoryWriter, schema_source

    fake: Any = object()
    process = trainer.bootstrap(settings, registry=fake, warehouse=fake, store=fake)
    service = ingest.bootstrap(settings, schemas=schema_source(), writer=MemoryWriter())
    monitor = consumer_options(settings)["group_id"]
    return {
        "services.monitor": (monitor, ()),
        "services.trainer": _capture_consumer(trainer, process.worker._new_consumer),
        "services.ingest": _capture_consumer(ingest, service.raw_consumer),
    }


def check_lag_scalers(objects: list[Obj]) -> list[str]:
    """KEDA follows the lag of the group the scaled service really consumes in, on topics it reads, at the
    cluster's bootstrap address, never past the partition count (a worker past it would idle)."""
    settings = cluster_settings(objects)
    groups = consumer_groups(settings)
    partitions = {
        t["spec"].get("topicName", t["metadata"]["name"]): t["spec"]["partitions"]
        for t in of_kind(objects, "KafkaTopic")
    }
    acls = manifest_acls(objects)
    problems = []
    for scaled in of_kind(objects, "ScaledObject"):
        where = f"ScaledObject/{scaled['metadata']['name']}"
        deployment = named(objects, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        if deployment is None:
            problems.append(f"{where}: scales no Deployment")
            continue
        container = containers(deployment)[0]
        group, topics = groups.get(service_module(container), ("", ()))
        user = next(
            (
                v.get("value")
                for v in container.get("env", [])
                if v["name"] == "DRIFTLOOP_KAFKA_SASL_USERNAME"
            ),
            None,
        )
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            if trigger["type"] != "kafka":
                continue
            if meta["consumerGroup"] != group:
                problems.append(
                    f"{where}: follows group {meta['consumerGroup']}, {service_module(container)} consumes as {group!r}"
                )
            if meta["bootstrapServers"] != settings.kafka_bootstrap:
                problems.append(
                    f"{where}: bootstrapServers {meta['bootstrapServers']} is not DRIFTLOOP_KAFKA_BOOTSTRAP"
                )
            topic = meta.get("topic")
            if topic not in partitions:
                problems.append(f"{where}: topic {topic} is no KafkaTopic")
                continue
            if (topics and topic not in topics) or (user, "topic", topic, "literal", "Read") not in acls:
                problems.append(f"{where}: {topic} is not a topic {service_module(container)} reads")
            if scaled["spec"]["maxReplicaCount"] > partitions[topic]:
                problems.append(
                    f"{where}: maxReplicaCount {scaled['spec']['maxReplicaCount']} > the {partitions[topic]} partitions of {topic}"
                )
            auth = named(
                objects, "TriggerAuthentication", trigger.get("authenticationRef", {}).get("name", "")
            )
            if auth is None:
                problems.append(f"{where}: its authenticationRef names no TriggerAuthentication")
                continue
            for var in auth["spec"].get("env", []):
                if var["containerName"] not in {c["name"] for c in containers(deployment)}:
                    problems.append(
                        f"TriggerAuthentication/{auth['metadata']['name']}: no container {var['containerName']}"
                    )
    return problems


# ---------------------------------------------------------------------------------------------- ClickHouse and the rest


def check_endpoints(objects: list[Obj]) -> list[str]:
    """DRIFTLOOP_CLICKHOUSE_URL is the operator's Service of a ClickHouseInstallation whose users include
    DRIFTLOOP_CLICKHOUSE_USER, and DRIFTLOOP_REGISTRY_URL is the registry's Service and port."""
    settings = cluster_settings(objects)
    problems = []
    host, _ = settings.clickhouse_host_port
    chis = {f"clickhouse-{c['metadata']['name']}": c for c in of_kind(objects, "ClickHouseInstallation")}
    if host not in chis:
        problems.append(
            f"DRIFTLOOP_CLICKHOUSE_URL {settings.clickhouse_url}: no ClickHouseInstallation has that Service"
        )
    else:
        configured = chis[host]["spec"]["configuration"].get("users", {})
        users = {key.split("/")[0] for key in configured}
        password = configured.get(f"{settings.clickhouse_user}/password", {})
        wanted = password.get("valueFrom", {}).get("secretKeyRef") if isinstance(password, dict) else None
        for deployment in of_kind(objects, "Deployment"):
            for container in containers(deployment):
                for var in container.get("env", []):
                    if (
                        var["name"] == "DRIFTLOOP_CLICKHOUSE_PASSWORD"
                        and var.get("valueFrom", {}).get("secretKeyRef") != wanted
                    ):
                        problems.append(
                            f"Deployment/{deployment['metadata']['name']}: its ClickHouse password is not the Secret "
                            f"the ClickHouseInstallation gives user {settings.clickhouse_user} ({wanted})"
                        )
        if settings.clickhouse_user not in users:
            problems.append(
                f"ClickHouseInstallation/{chis[host]['metadata']['name']} has no user {settings.clickhouse_user} (DRIFTLOOP_CLICKHOUSE_USER)"
            )
    url = urlsplit(settings.registry_url)
    service = named(objects, "Service", url.hostname or "")
    if service is None:
        problems.append(f"DRIFTLOOP_REGISTRY_URL {settings.registry_url}: no Service of that name")
    else:
        selected = [
            d for d in of_kind(objects, "Deployment") if _matches(service["spec"]["selector"], _pod_labels(d))
        ]
        if not any(service_module(c) == "services.registry" for d in selected for c in containers(d)):
            problems.append(f"Service/{url.hostname} does not select the registry")
        if url.port not in {p["port"] for p in service["spec"]["ports"]}:
            problems.append(f"Service/{url.hostname} has no port {url.port} (DRIFTLOOP_REGISTRY_URL)")
        # the registry listens on the port of its own URL
        if not any(url.port in _ports(d) for d in selected):
            problems.append(f"the registry's pods do not declare port {url.port} of DRIFTLOOP_REGISTRY_URL")
    return problems


def all_checks(documented: str) -> dict[str, Check]:
    return {
        "schemas": check_schemas,
        "workloads": check_workloads,
        "probes": check_probes,
        "services": check_services,
        "disruption_and_scaling": check_disruption_and_scaling,
        "settings": check_settings,
        "secret_refs": lambda objects: check_secret_refs(objects, documented),
        "kafka_endpoint": check_kafka_endpoint,
        "topics": check_topics,
        "acls": check_acls,
        "lag_scalers": check_lag_scalers,
        "endpoints": check_endpoints,
    }


def broken(objects: list[Obj], change: Callable[[list[Obj]], None]) -> list[Obj]:
    """A deep copy of ``objects`` with ``change`` applied: the negative cases."""
    copied = copy.deepcopy(objects)
    change(copied)
    return copied
