"""Print results: a table as the checks run, JSON, and JUnit XML for CI."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter

from r1deploy.smoke.runner import FAIL, CheckResult

LABEL = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP", "warn": "WARN"}


def table_line(result: CheckResult, stream=sys.stdout) -> None:
    first, *rest = result.message.splitlines() or [""]
    print(
        f"{LABEL[result.status]:<5} {result.name:<20} {result.duration_s:7.2f}s  {first}",
        file=stream,
        flush=True,
    )
    for line in rest:
        print(f"{'':35}{line}", file=stream, flush=True)


def summary(results: list[CheckResult], wall_s: float) -> str:
    counts = Counter(r.status for r in results)
    warned = f", {counts['warn']} warned" if counts["warn"] else ""
    return (
        f"{counts['pass']} passed, {counts['fail']} failed{warned}, {counts['skip']} "
        f"skipped in {wall_s:.2f}s"
    )


def to_json(results: list[CheckResult], wall_s: float, exit_code: int, source: str) -> str:
    return json.dumps(
        {
            "source": source,
            "exit_code": exit_code,
            "wall_s": round(wall_s, 3),
            "counts": dict(Counter(r.status for r in results)),
            "checks": [r.to_dict() for r in results],
        },
        indent=2,
        default=str,
    )


def write_junit(path: str, results: list[CheckResult], wall_s: float) -> None:
    counts = Counter(r.status for r in results)
    suite = ET.Element(
        "testsuite",
        name="r1deploy.smoke",
        tests=str(len(results)),
        failures=str(counts[FAIL]),
        errors="0",
        skipped=str(counts["skip"]),
        time=f"{wall_s:.3f}",
    )
    for result in results:
        group, _, name = result.name.rpartition(".")
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"smoke.{group or 'stack'}",
            name=name,
            time=f"{result.duration_s:.3f}",
        )
        if result.status in (FAIL, "warn"):
            failure = ET.SubElement(case, "failure", message=result.message.splitlines()[0][:500])
            failure.text = result.message
        elif result.status == "skip":
            ET.SubElement(case, "skipped", message=result.message)
        elif result.message:
            ET.SubElement(case, "system-out").text = result.message
    tree = ET.ElementTree(ET.Element("testsuites"))
    tree.getroot().append(suite)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
