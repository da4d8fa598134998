"""Dependencies point one way: boson → services → shared (CONVENTIONS §1).

Checked on the source itself, so a stray import fails CI, not a reviewer.
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


@pytest.mark.parametrize("path", python_files("shared"), ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_imports_neither_services_nor_boson(path: Path) -> None:
    bad = {m for m in imported_modules(path) if top(m) in ("services", "boson")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("path", python_files("services"), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_service_imports_shared_only(path: Path) -> None:
    own = path.relative_to(ROOT / "services").parts[0]
    bad = set()
    for module in imported_modules(path):
        parts = module.split(".")
        if parts[0] == "boson" or (parts[0] == "services" and len(parts) > 1 and parts[1] != own):
            bad.add(module)
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_layers_exist() -> None:
    for folder in ("shared", "services", "boson"):
        assert python_files(folder), folder
