"""The modules the build compiles to C with mypyc, and whether they run compiled.

Admission across tenants runs for every task the balancer places, in pure
Python loops over a few floats: those modules (:data:`COMPILED_MODULES`)
are compiled by the build (``setup.py``, with mypyc) into extension modules
that sit beside their sources and are imported in their place. The same
sources run unchanged as plain Python where the build was told not to
compile (``BOSON_PURE_PYTHON=1``).

In an editable install the compiled modules sit in the source tree, so an
edited source would go on being shadowed by the module compiled from it
before. The build records each source's digest (:data:`MANIFEST`);
:func:`stale_modules` names the compiled modules whose source no longer
matches, for the command line to warn and the tests to refuse to run.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

COMPILED_MODULES: tuple[str, ...] = (
    "boson_shared.scheduling.admission_state",
    "boson_shared.scheduling.admission_lines",
    "boson_shared.scheduling.admission",
    "boson_services.balancer.admission_ticket",
    "boson_services.balancer.ticket_book",
    "boson_services.balancer.tenancy",
)
"""What the build compiles: admission's rules and the balancer's gate in
front of them (the modules a task's way through admission runs in). They
import each other's classes natively, so they are compiled together."""

SHARED_RUNTIME = "boson_shared.admission_native"
"""The compiled modules' shared library (mypyc's group): an extension module
``admission_native__mypyc`` in ``boson_shared``, which each compiled module
imports."""

MANIFEST = Path(__file__).resolve().parents[1] / "compiled_sources.json"
"""Written by the build: each compiled module's name and its source's
SHA-256 (empty when the build compiled nothing)."""

STALE_HINT = "run `pip install -e .` again (or build with BOSON_PURE_PYTHON=1)"
"""What to do about a compiled module older than its source."""


@dataclass(frozen=True, slots=True)
class ModuleBuild:
    """How one of :data:`COMPILED_MODULES` is imported here."""

    name: str
    compiled: bool
    """Its extension module is what ``import`` loads."""
    stale: bool
    """Compiled, but from a source other than the one beside it now."""


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recorded_digests(manifest: Path = MANIFEST) -> dict[str, str]:
    """The digests the build recorded (none before a build, or if unreadable)."""
    try:
        loaded = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(name): str(digest) for name, digest in loaded.items()}


def module_builds(
    modules: Iterable[str] = COMPILED_MODULES, manifest: Path = MANIFEST
) -> list[ModuleBuild]:
    """For each module: whether ``import`` loads it compiled, and whether that
    compiled module was built from the source beside it (without importing it)."""
    recorded = recorded_digests(manifest)
    builds = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        compiled = origin is not None and origin.endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES)
        )
        stale = False
        if compiled and origin is not None:
            source = Path(origin).with_name(name.rpartition(".")[2] + ".py")
            stale = source.exists() and recorded.get(name) != source_digest(source)
        builds.append(ModuleBuild(name, compiled, stale))
    return builds


def stale_modules(builds: Iterable[ModuleBuild] | None = None) -> list[str]:
    """The compiled modules built from another source than the one beside them."""
    return [b.name for b in (module_builds() if builds is None else builds) if b.stale]


def describe(builds: Iterable[ModuleBuild] | None = None) -> str:
    """One line: how admission's modules run here."""
    builds = list(module_builds() if builds is None else builds)
    compiled = sum(b.compiled for b in builds)
    stale = [b.name for b in builds if b.stale]
    if stale:
        return f"admission: {len(stale)} compiled module(s) older than their source: {STALE_HINT}"
    if compiled == len(builds):
        return f"admission: compiled with mypyc ({compiled} modules)"
    if compiled == 0:
        return "admission: pure Python (built with BOSON_PURE_PYTHON=1, or not compiled)"
    return f"admission: {compiled} of {len(builds)} modules compiled"


def digests(sources: Mapping[str, Path]) -> dict[str, str]:
    """What the build records: each module's name and its source's digest."""
    return {name: source_digest(path) for name, path in sources.items()}


__all__ = [
    "COMPILED_MODULES",
    "MANIFEST",
    "SHARED_RUNTIME",
    "STALE_HINT",
    "ModuleBuild",
    "describe",
    "digests",
    "module_builds",
    "recorded_digests",
    "source_digest",
    "stale_modules",
]
