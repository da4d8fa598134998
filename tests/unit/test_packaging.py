"""The wheel installs only Boson-owned top-level packages, never generic names.

``pip install`` puts every top-level name of the wheel into site-packages,
where a generic one (``shared``, ``services``, ``tests``) would collide with
another project's. The wheel is built from a copy of the sources, so that a
``build/`` folder left in the checkout (which setuptools reuses, stale files
included) cannot hide or add anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from boson_shared.runtime.compiled import COMPILED_MODULES, SHARED_RUNTIME

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "boson", "boson_shared", "boson_services")
TOP_LEVEL = {"boson", "boson_shared", "boson_services"}

pytestmark = pytest.mark.slow


def test_the_wheel_holds_only_boson_packages(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            # Not what a build in the checkout compiled: this build compiles its own.
            ignore = shutil.ignore_patterns("__pycache__", "*.so", "compiled_sources.json")
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = out.glob("boson-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == TOP_LEVEL
    # The layers ship whole: each package's marker file and the CLI entry point.
    for package in TOP_LEVEL:
        assert f"{package}/__init__.py" in names
    assert "boson/simulation/report.py" in names
    # Admission ships compiled (boson_shared/runtime/compiled.py), its shared
    # runtime inside boson_shared, and with the digests of its sources.
    if os.environ.get("BOSON_PURE_PYTHON", "") in ("", "0"):
        for module in [*COMPILED_MODULES, f"{SHARED_RUNTIME}__mypyc"]:
            stem = module.replace(".", "/") + "."
            assert any(n.startswith(stem) and n.endswith(".so") for n in names), module
        assert "boson_shared/compiled_sources.json" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "boson = boson.cli:main" in archive.read(entry_points).decode()
