"""Reading the deploy files for the tests that hold them to the code.

Paths, YAML loading, and the two questions every check asks: which ``BOSON_``
variables a container gets, and which settings model reads them.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from boson.commands.run import SERVICES
from boson_shared.settings import BosonSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
RABBITMQ_CONF = DEPLOY / "rabbitmq" / "rabbitmq.conf"
DEFINITIONS = DEPLOY / "rabbitmq" / "definitions.json"
GENERATOR = DEPLOY / "rabbitmq" / "generate_definitions.py"
K8S = DEPLOY / "k8s"
K8S_BASE = K8S / "base"
K8S_KEDA = K8S / "keda"
SECRET_TEMPLATE = K8S / "secret.template.yaml"

BOSON_VARIABLE = re.compile(r"\bBOSON_[A-Z0-9_]+\b")
ENV_PREFIX = "BOSON_"

REQUIRED_IN_CONTAINERS = frozenset({"broker_url", "keys"})
"""Settings with a default that a service in a container still must be given:
``boson_shared.runtime.main.require_broker_and_keys`` exits with ConfigError without them."""

Doc = dict[str, Any]


def settings_class(service: str) -> type[BosonSettings]:
    """The model ``boson run <service>`` builds (the CLI's own commands use the base)."""
    return SERVICES[service][0] if service in SERVICES else BosonSettings


def field_of(variable: str) -> str:
    """``BOSON_NODE_ID`` → ``node_id``."""
    assert variable.startswith(ENV_PREFIX), variable
    return variable.removeprefix(ENV_PREFIX).lower()


def all_settings_fields() -> set[str]:
    """Every field any settings model reads."""
    fields = set(BosonSettings.model_fields)
    for settings_cls, _factory in SERVICES.values():
        fields |= set(settings_cls.model_fields)
    return fields


def required_fields(settings_cls: type[BosonSettings]) -> set[str]:
    """Fields without a default, plus those a container must be given anyway."""
    no_default = {name for name, info in settings_cls.model_fields.items() if info.is_required()}
    return no_default | REQUIRED_IN_CONTAINERS


def deploy_text_files() -> list[Path]:
    """Every file under ``deploy/`` that could set a variable, plus ``.dockerignore``."""
    suffixes = {".yaml", ".yml", ".conf", ".json", ".md", ".example", ""}
    files = [
        path
        for path in sorted(DEPLOY.rglob("*"))
        if path.is_file()
        and (path.suffix in suffixes or path.name == "Dockerfile")
        and path.name != ".gitignore"
        and path.parent.name != "secrets"
    ]
    return [*files, DOCKERIGNORE]


def load_yaml_documents(path: Path) -> list[Doc]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def load_generator() -> ModuleType:
    """``deploy/rabbitmq/generate_definitions.py`` as a module (deploy/ is no package)."""
    spec = importlib.util.spec_from_file_location("generate_definitions", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- compose -----------------------------------------------------------------


def compose() -> Doc:
    (document,) = load_yaml_documents(COMPOSE)
    return document


@dataclass(frozen=True)
class ComposeService:
    name: str
    spec: Doc

    @property
    def command(self) -> list[str]:
        return list(self.spec.get("command") or [])

    @property
    def runs(self) -> str | None:
        """The service ``boson run`` starts here, if any."""
        command = self.command
        return command[1] if command[:1] == ["run"] and len(command) > 1 else None

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment") or {}
        assert isinstance(env, dict), f"{self.name}: environment must be a mapping"
        return {str(key): str(value) for key, value in env.items()}

    @property
    def exported_by_entrypoint(self) -> set[str]:
        """Variables the entrypoint wrapper sets from secret files."""
        entrypoint = " ".join(self.spec.get("entrypoint") or [])
        return set(re.findall(r"\b(BOSON_[A-Z0-9_]+)=", entrypoint))

    @property
    def provided(self) -> set[str]:
        return set(self.environment) | self.exported_by_entrypoint

    @property
    def settings_cls(self) -> type[BosonSettings]:
        return settings_class(self.runs or self.name)


def compose_boson_services() -> list[ComposeService]:
    """Every compose service that runs the Boson image (not the broker, not monitoring)."""
    document = compose()
    image = document["x-boson"]["image"]
    return [
        ComposeService(name, spec)
        for name, spec in document["services"].items()
        if spec.get("image") == image
    ]


# -- kubernetes ----------------------------------------------------------------


def kustomization(directory: Path) -> Doc:
    (document,) = load_yaml_documents(directory / "kustomization.yaml")
    return document


def base_resources() -> list[tuple[Path, Doc]]:
    """Every resource the base kustomization lists, with the file it is in."""
    out: list[tuple[Path, Doc]] = []
    for name in kustomization(K8S_BASE)["resources"]:
        path = K8S_BASE / name
        out += [(path, doc) for doc in load_yaml_documents(path)]
    return out


def of_kind(kind: str) -> Iterator[Doc]:
    return (doc for _path, doc in base_resources() if doc["kind"] == kind)


def config_maps() -> dict[str, dict[str, str]]:
    """ConfigMap name → its data."""
    return {
        doc["metadata"]["name"]: {str(key): str(value) for key, value in doc["data"].items()}
        for doc in of_kind("ConfigMap")
    }


@dataclass(frozen=True)
class K8sContainer:
    deployment: Doc
    spec: Doc
    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def runs(self) -> str | None:
        args = list(self.spec.get("args") or [])
        return args[1] if args[:1] == ["run"] and len(args) > 1 else None

    @property
    def env(self) -> dict[str, Doc]:
        """Variable → its env entry (``value`` or ``valueFrom``)."""
        return {entry["name"]: entry for entry in self.spec.get("env") or []}

    @property
    def from_config_maps(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for source in self.spec.get("envFrom") or []:
            ref = source.get("configMapRef")
            if ref is not None:
                values |= self.config_maps[ref["name"]]
        return values

    @property
    def provided(self) -> set[str]:
        return set(self.env) | set(self.from_config_maps)

    @property
    def literal_values(self) -> dict[str, str]:
        values = dict(self.from_config_maps)
        values |= {name: str(e["value"]) for name, e in self.env.items() if "value" in e}
        return values

    @property
    def settings_cls(self) -> type[BosonSettings]:
        return settings_class(self.runs or "")


def k8s_containers() -> list[K8sContainer]:
    maps = config_maps()
    return [
        K8sContainer(deployment, container, maps)
        for deployment in of_kind("Deployment")
        for container in deployment["spec"]["template"]["spec"]["containers"]
    ]


def parse_conf(path: Path) -> dict[str, str]:
    """RabbitMQ's ``key = value`` format (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, sep, value = line.partition("=")
            assert sep, f"not key = value: {line!r}"
            values[key.strip()] = value.strip()
    return values


__all__ = [
    "BOSON_VARIABLE",
    "COMPOSE",
    "DEFINITIONS",
    "DEPLOY",
    "DOCKERFILE",
    "DOCKERIGNORE",
    "ENV_EXAMPLE",
    "K8S",
    "K8S_BASE",
    "K8S_KEDA",
    "RABBITMQ_CONF",
    "ROOT",
    "SECRET_TEMPLATE",
    "ComposeService",
    "K8sContainer",
    "all_settings_fields",
    "base_resources",
    "compose",
    "compose_boson_services",
    "config_maps",
    "deploy_text_files",
    "field_of",
    "k8s_containers",
    "kustomization",
    "load_generator",
    "load_yaml_documents",
    "of_kind",
    "parse_conf",
    "required_fields",
    "settings_class",
]
