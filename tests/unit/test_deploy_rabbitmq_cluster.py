"""deploy/k8s/rabbitmq: a three-node RabbitMQ cluster, held to what Boson needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from boson_shared.bus.broker_urls import parse_broker_urls
from tests.unit.deploy_files import (
    COMPOSE,
    DEPLOY,
    ENV_EXAMPLE,
    K8S,
    RABBITMQ_CONF,
    SECRET_TEMPLATE,
    compose,
    compose_boson_services,
    load_yaml_documents,
    parse_conf,
)

CLUSTER = K8S / "rabbitmq"
CLUSTER_SECRET = CLUSTER / "rabbitmq-secret.template.yaml"


def _kustomization() -> dict[str, Any]:
    (document,) = load_yaml_documents(CLUSTER / "kustomization.yaml")
    return document


def _resources() -> list[tuple[Path, dict[str, Any]]]:
    out: list[tuple[Path, dict[str, Any]]] = []
    for name in _kustomization()["resources"]:
        out += [(CLUSTER / name, doc) for doc in load_yaml_documents(CLUSTER / name)]
    return out


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    (doc,) = (
        d
        for _path, d in _resources()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    )
    return doc


def _conf(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_manifests_pass_kubernetes_validate() -> None:
    version = kubernetes_validate.latest_version()
    docs = _resources() + [(CLUSTER_SECRET, d) for d in load_yaml_documents(CLUSTER_SECRET)]
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {error.message}")


def test_kustomization_lists_exactly_the_files_beside_it() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in CLUSTER.glob("*.yaml")} - {
        "kustomization.yaml",
        CLUSTER_SECRET.name,
    }
    assert listed == on_disk


def test_three_nodes_behind_a_headless_service_they_discover_each_other_through() -> None:
    statefulset = _one("StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    pods = statefulset["spec"]["template"]["metadata"]["labels"]
    headless = _one("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= pods.items()
    assert _one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1

    config = _one("ConfigMap", "rabbitmq-config")["data"]
    assert "rabbitmq_peer_discovery_k8s" in config["enabled_plugins"]
    conf = _conf(config["rabbitmq.conf"])
    assert conf["cluster_formation.peer_discovery_backend"] == "k8s"
    assert conf["cluster_formation.k8s.service_name"] == headless["metadata"]["name"]
    namespace = _kustomization()["namespace"]
    suffix = f".{headless['metadata']['name']}.{namespace}.svc.cluster.local"
    assert conf["cluster_formation.k8s.hostname_suffix"] == suffix
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RABBITMQ_NODENAME"]["value"] == f"rabbit@$(MY_POD_NAME){suffix}"
    assert env["RABBITMQ_USE_LONGNAME"]["value"] == "true"

    # The nodes may read the endpoints the plugin lists, through their own account.
    sa = statefulset["spec"]["template"]["spec"]["serviceAccountName"]
    binding = _one("RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa}]
    role = _one("Role", binding["roleRef"]["name"])
    assert any(
        "endpoints" in rule["resources"] and "get" in rule["verbs"] for rule in role["rules"]
    )


def test_limits_are_those_of_the_single_node_config() -> None:
    single = _conf(RABBITMQ_CONF.read_text())
    cluster = _conf(_one("ConfigMap", "rabbitmq-config")["data"]["rabbitmq.conf"])
    for key in ("consumer_timeout", "max_message_size", "channel_max", "heartbeat"):
        assert cluster[key] == single[key], key


def test_secrets_come_from_the_secret_and_its_template_holds_every_key() -> None:
    (secret,) = load_yaml_documents(CLUSTER_SECRET)
    statefulset = _one("StatefulSet")
    spec = statefulset["spec"]["template"]["spec"]
    keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for c in spec["containers"]
        for e in c["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    keys |= {item["key"] for v in spec["volumes"] if "secret" in v for item in v["secret"]["items"]}
    assert keys == set(secret["stringData"])
    assert all(value.startswith("CHANGE") for value in secret["stringData"].values())


def test_boson_secret_template_lists_the_three_nodes() -> None:
    (secret,) = load_yaml_documents(SECRET_TEMPLATE)
    nodes = parse_broker_urls(secret["stringData"]["broker-url"])
    statefulset = _one("StatefulSet")
    service = statefulset["spec"]["serviceName"]
    namespace = _kustomization()["namespace"]
    expected = [
        f"{statefulset['metadata']['name']}-{i}.{service}.{namespace}.svc.cluster.local"
        for i in range(statefulset["spec"]["replicas"])
    ]
    assert [node.host for node in nodes] == expected
    assert {node.port for node in nodes} == {5672}


# -- compose: the cluster profile ------------------------------------------------


def test_compose_cluster_profile_joins_two_nodes_to_the_first() -> None:
    services = compose()["services"]
    extra = {name: spec for name, spec in services.items() if "cluster" in spec.get("profiles", [])}
    assert set(extra) == {"rabbitmq-2", "rabbitmq-3"}
    conf = parse_conf(DEPLOY / "rabbitmq" / "cluster.conf")
    assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
    listed = {v for k, v in conf.items() if k.startswith("cluster_formation.classic_config.nodes.")}
    hostnames = {services["rabbitmq"]["hostname"]} | {s["hostname"] for s in extra.values()}
    assert listed == {f"rabbit@{host}" for host in hostnames}
    configs = compose()["configs"]
    for name, spec in extra.items():
        mounted = {c["source"] for c in spec["configs"]}
        assert {"rabbitmq-conf", "rabbitmq-cluster"} <= mounted, name
        assert (COMPOSE.parent / configs["rabbitmq-cluster"]["file"]).exists()
        assert spec["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        # Every node shares the first node's cookie.
        cookie = spec["environment"]["RABBITMQ_ERLANG_COOKIE"]
        assert cookie == services["rabbitmq"]["environment"]["RABBITMQ_ERLANG_COOKIE"]


def test_compose_broker_url_with_the_documented_extra_nodes_lists_three() -> None:
    example = ENV_EXAMPLE.read_text()
    (extra,) = re.findall(r"^#?\s*BROKER_EXTRA_NODES=(\S+)", example, re.M)
    (service, *_) = compose_boson_services()
    template = service.environment["BOSON_BROKER_URL"]
    url = (
        template.replace("${BROKER_EXTRA_NODES:-}", extra)
        .replace("${RABBITMQ_USER:?set RABBITMQ_USER in deploy/.env}", "u")
        .replace("${RABBITMQ_PASSWORD:?set RABBITMQ_PASSWORD in deploy/.env}", "p%2Cq")
    )
    nodes = parse_broker_urls(url)
    assert [n.host for n in nodes] == ["rabbitmq", "rabbitmq-2", "rabbitmq-3"]
    assert {n.password for n in nodes} == {"p,q"}
