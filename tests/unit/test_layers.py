"""Dependencies point one way: boson → boson_services → boson_shared.

``boson_shared`` is the library every service uses; it imports neither the
services nor the user-facing ``boson`` package (CLI, SDK, simulator). A
service imports ``boson_shared`` only, never another service. The simulator
(``boson.simulation``) drives the library and is imported by nothing below
the user-facing layer. No module imports a test module (shared test helpers
live in ``tests/support``). Checked on the source itself, so a stray import
fails CI, not a reviewer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def top(module: str) -> str:
    return module.split(".", 1)[0]


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", python_files("boson_shared"), ids=relative)
def test_the_library_imports_neither_services_nor_boson(path: Path) -> None:
    bad = {m for m in imported_modules(path) if top(m) in ("boson_services", "boson")}
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", python_files("boson_services"), ids=relative)
def test_a_service_imports_the_library_only(path: Path) -> None:
    own = path.relative_to(ROOT / "boson_services").parts[0]
    bad = set()
    for module in imported_modules(path):
        parts = module.split(".")
        if parts[0] == "boson" or (
            parts[0] == "boson_services" and len(parts) > 1 and parts[1] != own
        ):
            bad.add(module)
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "path", python_files("boson_shared") + python_files("boson_services"), ids=relative
)
def test_nothing_below_the_user_layer_imports_the_simulator(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.startswith("boson.simulation")}
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


def is_test_module(module: str) -> bool:
    return top(module) == "tests" and module.rsplit(".", 1)[-1].startswith("test_")


@pytest.mark.parametrize("path", python_files("tests") + python_files("benchmarks"), ids=relative)
def test_no_module_imports_a_test_module(path: Path) -> None:
    # Shared helpers live in tests/support: a test module's helpers imported
    # elsewhere run its tests twice and tie two suites together.
    bad = {m for m in imported_modules(path) if is_test_module(m)}
    assert not bad, f"{relative(path)} imports {sorted(bad)}"


def test_the_layers_exist() -> None:
    for folder in ("boson_shared", "boson_services", "boson", "boson/simulation"):
        assert python_files(folder), folder
