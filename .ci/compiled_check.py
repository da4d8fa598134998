"""Exit 1 unless admission's modules run compiled here, from their sources as they are.

CI runs it after installing (the tests then run what a built install runs)
and with the installed wheel, from outside the tree.
"""

from __future__ import annotations

import sys

from boson_shared.runtime.compiled import describe, module_builds


def main() -> int:
    builds = module_builds()
    print(describe(builds))
    return 0 if all(b.compiled and not b.stale for b in builds) else 1


if __name__ == "__main__":
    sys.exit(main())
