"""The build: admission's modules compiled to C with mypyc.

Which modules, and why, is in ``boson_shared/runtime/compiled.py``; the
project's metadata is in ``pyproject.toml``. ``BOSON_PURE_PYTHON=1`` builds
plain Python (no compiler needed) and removes compiled modules an earlier
build left in this tree, which would otherwise shadow their sources.
"""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
COMPILED = runpy.run_path(str(ROOT / "boson_shared" / "runtime" / "compiled.py"))
SOURCES = {name: name.replace(".", "/") + ".py" for name in COMPILED["COMPILED_MODULES"]}
MANIFEST = Path(COMPILED["MANIFEST"])

# The compiled modules are type-checked by mypy as they are compiled, on
# their own: no config file (the project's asks for plugins the build
# environment lacks), and what they import from outside the compiled set is
# read for its types only.
MYPYC_FLAGS = [
    "--config-file=",
    "--ignore-missing-imports",
    "--follow-imports=silent",
    "--python-version=3.11",
]


def pure_python() -> bool:
    return os.environ.get("BOSON_PURE_PYTHON", "") not in ("", "0")


if pure_python():
    # Each compiled module's path without a suffix, and the shared runtime's.
    stems = [ROOT / source.removesuffix(".py") for source in SOURCES.values()]
    stems.append(ROOT / (COMPILED["SHARED_RUNTIME"].replace(".", "/") + "__mypyc"))
    for stem in stems:
        for suffix in ("so", "pyd"):
            for built in stem.parent.glob(f"{stem.name}.*.{suffix}"):
                built.unlink()
    MANIFEST.write_text("{}\n", encoding="utf-8")
    setup()
else:
    from mypyc.build import mypycify

    digests = COMPILED["digests"]({name: ROOT / source for name, source in SOURCES.items()})
    MANIFEST.write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    # The runtime the compiled modules share goes inside boson_shared (by
    # default it would be a top-level module named by a hash).
    extensions = mypycify(
        [*MYPYC_FLAGS, *SOURCES.values()], opt_level="3", group_name=COMPILED["SHARED_RUNTIME"]
    )
    setup(ext_modules=extensions)
