"""Count the broker tests from pytest's own results; fail if none ran or any skipped.

Inputs: the JUnit XML of the full run and the ids that
``pytest --collect-only -q -m broker`` lists. A broker suite that silently
skipped (no broker, no Docker) must fail CI, not pass it. An optional third
argument names the marker counted (``cluster`` for the cluster suite's own
run); the rule is the same.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def junit_key(nodeid: str) -> tuple[str, str]:
    """Map a pytest node id to JUnit's (classname, name)."""
    path, _, rest = nodeid.partition("::")
    parts = rest.split("::")
    module = path.removesuffix(".py").replace("/", ".")
    return ".".join([module, *parts[:-1]]), parts[-1]


def main(junit_path: str, ids_path: str, marker: str = "broker") -> int:
    broker_ids = [
        line.strip()
        for line in Path(ids_path).read_text().splitlines()
        if "::" in line and not line.startswith(" ")
    ]
    wanted = {junit_key(nodeid) for nodeid in broker_ids}
    counts = {"passed": 0, "failed": 0, "skipped": 0, "known failures": 0}
    for case in ET.parse(junit_path).getroot().iter("testcase"):
        key = (case.get("classname", ""), case.get("name", ""))
        if key not in wanted:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        elif (skipped := case.find("skipped")) is not None:
            # A test marked xfail (a known failure, with its reason) ran and
            # failed as expected: counted and printed, not taken for a skip.
            if skipped.get("type") == "pytest.xfail":
                counts["known failures"] += 1
                print(f"known failure: {key[1]}: {skipped.get('message', '')}")
            else:
                counts["skipped"] += 1
        else:
            counts["passed"] += 1
    total = sum(counts.values())
    print(
        f"{marker} tests: {total} collected with the {marker} marker, "
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped, "
        f"{counts['known failures']} known failures (xfail)"
    )
    if counts["passed"] == 0:
        print(f"FAIL: no {marker} test ran", file=sys.stderr)
        return 1
    if counts["skipped"] or counts["failed"]:
        print(f"FAIL: {marker} tests skipped or failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
