"""Which of admission's modules run compiled, and a compiled module that
predates an edit of its source (boson_shared.runtime.compiled)."""

from __future__ import annotations

import importlib
import importlib.machinery
import json
import sys
from pathlib import Path

import pytest

from boson_shared.runtime.compiled import (
    COMPILED_MODULES,
    describe,
    digests,
    module_builds,
    stale_modules,
)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``compiledpkg`` with one module, ``rules``, on the path."""
    root = tmp_path / "compiledpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "rules.py").write_text("LIMIT = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # Each test's package, not one an earlier test imported.
    monkeypatch.delitem(sys.modules, "compiledpkg", raising=False)
    importlib.invalidate_caches()
    return root


def compile_beside(package: Path) -> None:
    """Stands for the build's extension module: found first by ``import``
    (nothing here loads it)."""
    (package / f"rules{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    importlib.invalidate_caches()


def build(package: Path, manifest: Path) -> Path:
    """What the build leaves: the compiled module, and its source's digest recorded."""
    compile_beside(package)
    manifest.write_text(json.dumps(digests({"compiledpkg.rules": package / "rules.py"})))
    return manifest


def test_a_module_compiled_from_its_source_as_it_is_is_not_stale(
    package: Path, tmp_path: Path
) -> None:
    manifest = build(package, tmp_path / "manifest.json")
    builds = module_builds(["compiledpkg.rules"], manifest)
    assert [(b.compiled, b.stale) for b in builds] == [(True, False)]
    assert stale_modules(builds) == []
    assert describe(builds) == "admission: compiled with mypyc (1 modules)"


def test_an_edit_after_the_build_makes_the_compiled_module_stale(
    package: Path, tmp_path: Path
) -> None:
    manifest = build(package, tmp_path / "manifest.json")
    (package / "rules.py").write_text("LIMIT = 2\n")
    builds = module_builds(["compiledpkg.rules"], manifest)
    assert stale_modules(builds) == ["compiledpkg.rules"]
    assert "pip install -e ." in describe(builds)


def test_a_compiled_module_the_build_did_not_record_is_stale(package: Path, tmp_path: Path) -> None:
    # A pure-Python build over a tree an earlier build compiled: the
    # manifest is empty, the old extension module would shadow the source.
    compile_beside(package)
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}\n")
    assert stale_modules(module_builds(["compiledpkg.rules"], manifest)) == ["compiledpkg.rules"]


def test_a_module_without_a_compiled_build_runs_its_source(package: Path, tmp_path: Path) -> None:
    builds = module_builds(["compiledpkg.rules"], tmp_path / "missing.json")
    assert [(b.compiled, b.stale) for b in builds] == [(False, False)]
    assert describe(builds).startswith("admission: pure Python")


def test_this_install_runs_admission_from_its_sources_as_they_are() -> None:
    # Compiled or pure, never a compiled module built from another source
    # (the session would not have started: tests/conftest.py refuses).
    builds = module_builds()
    assert [b.name for b in builds] == list(COMPILED_MODULES)
    assert stale_modules(builds) == []


def test_the_command_line_warns_in_one_line_when_a_compiled_module_is_stale(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import boson.cli

    monkeypatch.setattr(boson.cli, "stale_modules", lambda: ["boson_shared.scheduling.admission"])
    assert boson.cli.main(["keys", "generate"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        "boson: warning: compiled from older sources: boson_shared.scheduling.admission:"
        " run `pip install -e .` again (or build with BOSON_PURE_PYTHON=1)"
    ]
