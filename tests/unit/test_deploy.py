"""The deploy files, held to the code without Docker or a cluster.

Every service ``boson run`` knows runs in compose and in Kubernetes; every
``BOSON_`` variable there is a real setting, and each container gets what
its service cannot start without; ``definitions.json`` is what the code
declares; the Dockerfile passes hadolint and the manifests their schemas.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from boson.commands.run import SERVICES
from boson_services.balancer.settings import BalancerSettings
from boson_services.monitor.app import create as create_monitor
from boson_services.monitor.settings import MonitorSettings
from boson_shared.bus.memory import MemoryBroker, MemoryTransport
from boson_shared.contract.codec import EnvelopeCodec
from boson_shared.contract.keyring import generate_key_spec
from boson_shared.settings import BosonSettings
from tests.unit.deploy_files import (
    BOSON_VARIABLE,
    COMPOSE,
    DEFINITIONS,
    DOCKERFILE,
    DOCKERIGNORE,
    ENV_EXAMPLE,
    K8S_BASE,
    K8S_KEDA,
    RABBITMQ_CONF,
    ROOT,
    SECRET_TEMPLATE,
    ComposeService,
    K8sContainer,
    all_settings_fields,
    base_resources,
    compose,
    compose_boson_services,
    deploy_text_files,
    field_of,
    k8s_containers,
    kustomization,
    load_generator,
    load_yaml_documents,
    of_kind,
    parse_conf,
    required_fields,
)

HEALTH_PORT = "8080"

# -- every service runs everywhere ------------------------------------------


def test_every_service_boson_run_knows_has_a_compose_service() -> None:
    runs = {service.runs for service in compose_boson_services()}
    assert set(SERVICES) <= runs, f"no compose service for {sorted(set(SERVICES) - runs)}"


def test_every_service_boson_run_knows_has_a_k8s_deployment() -> None:
    runs = {container.runs for container in k8s_containers()}
    assert set(SERVICES) <= runs, f"no Deployment for {sorted(set(SERVICES) - runs)}"


def test_deploy_files_run_only_services_boson_run_knows_or_will_know() -> None:
    # transfer may land in SERVICES after its deploy entries; anything else is a typo.
    known = {*SERVICES, "transfer"}
    runs = {s.runs for s in compose_boson_services()} | {c.runs for c in k8s_containers()}
    assert runs - {None} <= known


# -- BOSON_ variables are settings ------------------------------------------


def test_every_boson_variable_in_the_deploy_files_is_a_setting() -> None:
    fields = all_settings_fields()
    # A service boson run does not know yet (transfer, while it lands) has no
    # model to check its own variables against; everything else must match.
    entries: list[ComposeService | K8sContainer] = [*compose_boson_services(), *k8s_containers()]
    pending = {
        variable
        for entry in entries
        if entry.runs is not None and entry.runs not in SERVICES
        for variable in entry.provided
    }
    unknown = {
        f"{path.relative_to(ROOT)}: {variable}"
        for path in deploy_text_files()
        for variable in BOSON_VARIABLE.findall(path.read_text())
        if field_of(variable) not in fields and variable not in pending
    }
    assert not unknown, f"not a field of any settings model: {sorted(unknown)}"


def test_each_compose_service_sets_only_its_own_settings_and_all_it_needs() -> None:
    for service in compose_boson_services():
        if service.runs is not None and service.runs not in SERVICES:
            continue
        fields = set(service.settings_cls.model_fields)
        provided = {field_of(v) for v in service.provided if v.startswith("BOSON_")}
        assert provided <= fields, f"{service.name}: {sorted(provided - fields)} not settings"
        missing = required_fields(service.settings_cls) - provided
        assert not missing, f"compose {service.name} does not set {sorted(missing)}"


def test_each_k8s_container_sets_only_its_own_settings_and_all_it_needs() -> None:
    for container in k8s_containers():
        if container.runs not in SERVICES:
            continue
        fields = set(container.settings_cls.model_fields)
        provided = {field_of(v) for v in container.provided}
        assert provided <= fields, f"{container.name}: {sorted(provided - fields)} not settings"
        missing = required_fields(container.settings_cls) - provided
        assert not missing, f"k8s {container.name} does not set {sorted(missing)}"


def test_literal_setting_values_in_deploy_files_validate() -> None:
    """A value a model would reject (``BOSON_SLOTS: two``) fails here, not at start."""
    for service in compose_boson_services():
        values = {field_of(k): v for k, v in service.environment.items() if "${" not in v}
        service.settings_cls.model_validate(values)
    for container in k8s_containers():
        values = {field_of(k): v for k, v in container.literal_values.items()}
        container.settings_cls.model_validate(values)


def _path_fields(settings_cls: type[BosonSettings]) -> set[str]:
    return {name for name, info in settings_cls.model_fields.items() if info.annotation is Path}


def test_path_settings_point_into_mounted_volumes() -> None:
    """The root filesystem is read-only in k8s and ephemeral in compose."""
    for service in compose_boson_services():
        mounts = {str(v).split(":")[1] for v in service.spec.get("volumes") or []}
        for name in _path_fields(service.settings_cls):
            assert service.environment.get(f"BOSON_{name.upper()}") in mounts, service.name
    for container in k8s_containers():
        mounts = {m["mountPath"] for m in container.spec.get("volumeMounts") or []}
        for name in _path_fields(container.settings_cls):
            assert container.literal_values.get(f"BOSON_{name.upper()}") in mounts, container.name


def test_secrets_come_from_secret_stores_never_from_literals() -> None:
    for container in k8s_containers():
        for variable in ("BOSON_BROKER_URL", "BOSON_KEYS"):
            ref = container.env[variable]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "boson-secrets", container.name
    for service in compose_boson_services():
        assert "BOSON_KEYS" not in service.environment, service.name
        assert "boson_keys" in service.spec["secrets"], service.name
        assert "BOSON_KEYS" in service.exported_by_entrypoint, service.name
        url = service.environment["BOSON_BROKER_URL"]
        assert "${RABBITMQ_USER" in url, service.name
        assert "${RABBITMQ_PASSWORD" in url, service.name


def test_executors_in_k8s_take_their_node_id_from_the_pod_name() -> None:
    (executor,) = (c for c in k8s_containers() if c.runs == "executor")
    assert executor.env["BOSON_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    requests = executor.spec["resources"]["requests"]
    assert {"cpu", "memory"} <= set(requests)


# -- health ------------------------------------------------------------------


def test_every_container_serves_health_where_its_checks_look() -> None:
    for service in compose_boson_services():
        if service.runs is None:
            continue  # the cli service runs one command and exits
        assert service.environment["BOSON_HEALTH_PORT"] == HEALTH_PORT, service.name
        assert service.environment["BOSON_HEALTH_HOST"] == "0.0.0.0", service.name
    for container in k8s_containers():
        values = container.literal_values
        assert values["BOSON_HEALTH_PORT"] == HEALTH_PORT, container.name
        assert values["BOSON_HEALTH_HOST"] == "0.0.0.0", container.name
        ports = {p["name"]: p["containerPort"] for p in container.spec["ports"]}
        assert ports["health"] == int(HEALTH_PORT)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = container.spec[probe]["httpGet"]
            assert (get["path"], get["port"]) == ("/health", "health"), (container.name, probe)


def test_stop_grace_outlasts_the_drain() -> None:
    drain = BosonSettings.model_fields["drain_grace_s"].default
    for container in k8s_containers():
        drain_here = float(container.literal_values.get("BOSON_DRAIN_GRACE_S", drain))
        grace = container.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > drain_here, container.name
    for service in compose_boson_services():
        assert int(service.spec["stop_grace_period"].removesuffix("s")) > drain, service.name


# -- compose -----------------------------------------------------------------


def test_compose_waits_for_a_healthy_broker_and_runs_three_executors() -> None:
    services = compose()["services"]
    assert services["rabbitmq"]["image"].endswith("-management")
    assert "test" in services["rabbitmq"]["healthcheck"]
    for service in compose_boson_services():
        depends = service.spec["depends_on"]["rabbitmq"]
        assert depends["condition"] == "service_healthy", service.name
    (executor,) = (s for s in compose_boson_services() if s.runs == "executor")
    assert executor.spec["deploy"]["replicas"] == 3
    cli = services["cli"]
    assert "cli" in cli["profiles"]
    assert cli["healthcheck"] == {"disable": True}


def test_compose_broker_config_and_definitions_come_from_deploy_rabbitmq() -> None:
    document = compose()
    mounts = {m["source"]: m["target"] for m in document["services"]["rabbitmq"]["configs"]}
    configs = document["configs"]
    definitions_dir = parse_conf(RABBITMQ_CONF)["definitions.local.path"]
    assert (COMPOSE.parent / configs["rabbitmq-conf"]["file"]).resolve() == RABBITMQ_CONF
    assert (COMPOSE.parent / configs["rabbitmq-topology"]["file"]).resolve() == DEFINITIONS
    assert mounts["rabbitmq-conf"].startswith("/etc/rabbitmq/conf.d/")
    for name in ("rabbitmq-topology", "rabbitmq-users"):
        assert str(Path(mounts[name]).parent) == definitions_dir
        assert mounts[name].endswith(".json")
    # The users file compose writes from deploy/.env is valid definitions JSON.
    users = json.loads(
        configs["rabbitmq-users"]["content"]
        .replace("${RABBITMQ_USER}", "u")
        .replace("${RABBITMQ_PASSWORD}", "p")
    )
    assert users["users"][0]["name"] == users["permissions"][0]["user"] == "u"


def test_compose_credentials_are_not_defaults_nor_committed() -> None:
    text = COMPOSE.read_text()
    assert "guest" not in text
    variables = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    assert variables <= documented, f"undocumented in .env.example: {variables - documented}"
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert example["RABBITMQ_PASSWORD"].startswith("CHANGE")
    tracked = subprocess.run(
        ["git", "ls-files", "deploy/.env", "deploy/secrets"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked in ([], ["deploy/secrets/.gitignore"])


# -- RabbitMQ ----------------------------------------------------------------


def test_definitions_json_is_what_the_code_declares() -> None:
    generator = load_generator()
    assert DEFINITIONS.read_text() == generator.render(), (
        "deploy/rabbitmq/definitions.json is stale: run "
        "python deploy/rabbitmq/generate_definitions.py"
    )
    declared = BosonSettings.model_construct().names().shared_queues()
    written = json.loads(DEFINITIONS.read_text())
    assert {q["name"] for q in written["queues"]} == {q.name for q in declared.queues}
    assert {e["name"] for e in written["exchanges"]} == {e.name for e in declared.exchanges}
    for queue in written["queues"]:
        assert queue["arguments"] == declared.queue(queue["name"]).arguments()


def test_rabbitmq_conf_limits_fit_the_services() -> None:
    conf = parse_conf(RABBITMQ_CONF)
    park_after_ms = BalancerSettings.model_fields["park_after_s"].default * 1000
    assert int(conf["consumer_timeout"]) >= 2 * park_after_ms
    assert int(conf["max_message_size"]) > BosonSettings.model_fields["max_message_bytes"].default
    assert conf["definitions.import_backend"] == "local_filesystem"


# -- Dockerfile --------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_non_root_and_runs_boson() -> None:
    instructions = _instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2
    runtime = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    ops = dict(runtime)
    assert json.loads(ops["ENTRYPOINT"]) == ["boson"]
    user = ops["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert json.loads(ops["HEALTHCHECK"].split("CMD", 1)[1])[:2] == ["boson", "health"]
    runtime_text = " ".join(args for _, args in runtime)
    assert "[test]" not in DOCKERFILE.read_text()
    assert "apt-get" not in runtime_text
    assert "gcc" not in runtime_text
    assert f"BOSON_HEALTH_PORT={HEALTH_PORT}" in runtime_text
    assert "BOSON_HEALTH_HOST=0.0.0.0" in runtime_text


def test_dockerfile_copies_only_what_dockerignore_lets_through() -> None:
    allowed = {
        line.removeprefix("!").rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    assert DOCKERIGNORE.read_text().splitlines().count("*") == 1, "allow-list expected"
    for op, args in _instructions():
        if op == "COPY" and "--from" not in args:
            *sources, _target = args.split()
            for source in sources:
                assert source in allowed, f"COPY {source} is excluded by .dockerignore"
                assert (ROOT / source).exists(), source


def _hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e '.[test]'")
    try:
        subprocess.run([found, "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the hadolint binary cannot run on this platform: {error}")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- Kubernetes ----------------------------------------------------------------


def test_built_in_manifests_pass_kubernetes_validate() -> None:
    version = kubernetes_validate.latest_version()
    docs = [(path, doc) for path, doc in base_resources()]
    docs += [(SECRET_TEMPLATE, doc) for doc in load_yaml_documents(SECRET_TEMPLATE)]
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {error.message}")


def test_secret_template_holds_every_key_the_deployments_read() -> None:
    (secret,) = load_yaml_documents(SECRET_TEMPLATE)
    assert secret["metadata"]["namespace"] == kustomization(K8S_BASE)["namespace"]
    for container in k8s_containers():
        for entry in container.env.values():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["name"] == secret["metadata"]["name"], container.name
                assert ref["key"] in secret["stringData"], (container.name, ref["key"])


def test_executor_pdb_and_monitor_service_select_their_pods() -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind("Deployment")}

    def pods_of(selector: dict[str, str]) -> set[str]:
        return {
            name
            for name, d in deployments.items()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        }

    (pdb,) = of_kind("PodDisruptionBudget")
    assert pods_of(pdb["spec"]["selector"]["matchLabels"]) == {"boson-executor"}
    (service,) = (s for s in of_kind("Service") if s["metadata"]["name"] == "boson-monitor")
    assert pods_of(service["spec"]["selector"]) == {"boson-monitor"}
    assert service["spec"]["ports"][0]["targetPort"] == "health"


def test_kustomizations_list_exactly_the_files_beside_them() -> None:
    base = kustomization(K8S_BASE)
    listed = set(base["resources"])
    on_disk = {p.name for p in K8S_BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    images = {i["name"] for i in base["images"]}
    for container in k8s_containers():
        assert container.spec["image"] in images
    keda = kustomization(K8S_KEDA)
    assert keda["resources"] == ["../base", "scaledobject.yaml"]
    assert (K8S_KEDA / "scaledobject.yaml").exists()


def test_keda_scales_executors_on_the_monitors_backlog_endpoint() -> None:
    (scaled,) = load_yaml_documents(K8S_KEDA / "scaledobject.yaml")
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    namespace = kustomization(K8S_BASE)["namespace"]
    assert scaled["metadata"]["namespace"] == namespace
    (executor,) = (c for c in k8s_containers() if c.runs == "executor")
    assert scaled["spec"]["scaleTargetRef"]["name"] == executor.name
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]

    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "metrics-api"
    meta = trigger["metadata"]
    url = urlsplit(meta["url"])
    service_name, service_namespace, *_ = (url.hostname or "").split(".")
    assert service_namespace == namespace
    (service,) = (s for s in of_kind("Service") if s["metadata"]["name"] == service_name)
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    assert float(meta["targetValue"]) > 0

    # The path and the value KEDA reads are what the monitor really serves.
    settings = MonitorSettings.model_validate({"keys": generate_key_spec("k1")})
    monitor = create_monitor(
        settings, MemoryTransport(MemoryBroker()), EnvelopeCodec.from_settings(settings)
    )
    assert url.path in monitor.routes()
    assert isinstance(monitor.backlog_view()[meta["valueLocation"]], int)


def test_kustomize_renders_both_kustomizations() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the structure tests above still ran")
    for directory in (K8S_BASE, K8S_KEDA):
        rendered = subprocess.run(
            [kubectl, "kustomize", str(directory)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rendered.returncode == 0, rendered.stderr
        docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
        namespaced = [d for d in docs if d["kind"] != "Namespace"]
        assert all(d["metadata"]["namespace"] == "boson" for d in namespaced)
        kinds = {d["kind"] for d in docs}
        assert ("ScaledObject" in kinds) == (directory == K8S_KEDA)
