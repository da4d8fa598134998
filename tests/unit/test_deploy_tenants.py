"""The deploy files carry the example tenants file to the services that read it.

The balancer (admission) and the scheduler (``unknown-tenant``) read
``BOSON_TENANTS_FILE``; the monitor learns the tenants from the balancer's
reports. Both deploy flavours mount the file into those two and leave the
variable commented, so a fresh deployment keeps one ``default`` tenant; the
commented line, once uncommented, must name the mounted file.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import yaml

from boson_shared.scheduling.tenants import load_tenants
from tests.unit.deploy_files import (
    COMPOSE,
    DEPLOY,
    K8S_BASE,
    ComposeService,
    K8sContainer,
    compose,
    compose_boson_services,
    config_maps,
    k8s_containers,
    kustomization,
    settings_class,
)

EXAMPLE = DEPLOY / "tenants" / "tenants.example.toml"
READERS = {"balancer", "scheduler"}
VARIABLE = "BOSON_TENANTS_FILE"


def uncommented(text: str) -> str:
    """``text`` with the commented tenants settings made live (``# `` dropped)."""
    text = re.sub(rf"^(\s*)# ({VARIABLE}: )", r"\1\2", text, flags=re.M)
    return re.sub(rf"^(\s*)# (- name: {VARIABLE})\n(\s*)# ", r"\1\2\n\3", text, flags=re.M)


def test_the_example_is_a_valid_tenants_file() -> None:
    assert load_tenants(EXAMPLE).names


def _compose_readers(document: dict[str, object] | None = None) -> list[ComposeService]:
    services = compose_boson_services()
    if document is not None:
        image = document["x-boson"]["image"]  # type: ignore[index]
        services = [
            ComposeService(name, spec)
            for name, spec in document["services"].items()  # type: ignore[attr-defined]
            if spec.get("image") == image
        ]
    return [s for s in services if s.runs in READERS]


def test_compose_mounts_the_example_and_leaves_one_tenant_by_default() -> None:
    source = compose()["configs"]["tenants"]["file"]
    default = re.fullmatch(r"\$\{TENANTS_FILE:-(.+)\}", source)
    assert default is not None, source
    assert (COMPOSE.parent / default.group(1)).resolve() == EXAMPLE.resolve()
    readers = _compose_readers()
    assert {s.runs for s in readers} == READERS
    for service in compose_boson_services():
        assert VARIABLE not in service.environment, service.name
    live = _compose_readers(yaml.safe_load(uncommented(COMPOSE.read_text())))
    assert {s.runs for s in live} == READERS
    for service in live:
        targets = {c["target"] for c in service.spec["configs"] if c["source"] == "tenants"}
        assert service.environment[VARIABLE] in targets, service.name
        settings = settings_class(service.runs or "").model_validate(
            {"tenants_file": service.environment[VARIABLE]}
        )
        assert settings.tenants_file == Path("/etc/boson/tenants.toml")


def _mounted_file(container: K8sContainer, value: str) -> str | None:
    """The ConfigMap key ``value`` names through the container's mounts, if any."""
    volumes = {v["name"]: v for v in container.deployment["spec"]["template"]["spec"]["volumes"]}
    path = PurePosixPath(value)
    for mount in container.spec.get("volumeMounts") or []:
        if path.parent == PurePosixPath(mount["mountPath"]):
            config_map = volumes[mount["name"]].get("configMap")
            if config_map is not None:
                return f"{config_map['name']}/{path.name}"
    return None


def test_k8s_mounts_the_example_and_leaves_one_tenant_by_default() -> None:
    assert "tenants.yaml" in kustomization(K8S_BASE)["resources"]
    assert config_maps()["boson-tenants"]["tenants.toml"] == EXAMPLE.read_text()
    for container in k8s_containers():
        assert VARIABLE not in container.provided, container.name
    for name in READERS:
        path = K8S_BASE / f"{name}.yaml"
        (deployment,) = [
            d for d in yaml.safe_load_all(uncommented(path.read_text())) if d is not None
        ]
        (spec,) = deployment["spec"]["template"]["spec"]["containers"]
        container = K8sContainer(deployment, spec)
        value = container.env[VARIABLE]["value"]
        assert _mounted_file(container, value) == "boson-tenants/tenants.toml", name
