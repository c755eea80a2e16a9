"""Benchmark: validate a generated 1,000-plugin tools file (target: under 1 s)."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from r1deploy.tools import validate_files

PLUGINS = 1000
TARGET_S = 1.0


def generated_plugins(count: int) -> list[dict]:
    return [
        {
            "id": f"tool_{i}",
            "name": f"call_api_{i}",
            "description": f"Plugin number {i}: looks up an item by its key.",
            "params": {
                "type": "object",
                "properties": {
                    "key": {"type": "string", "description": "Item key"},
                    "limit": {"type": "integer", "minimum": 1, "description": "How many"},
                },
                "required": ["key", "limit"],
                "additionalProperties": False,
            },
            "url": f"https://api{i % 7}.example.com/v1/items/{{key}}",
            "method": "GET",
            "timeout_s": 5,
        }
        for i in range(count)
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tools.json"
        path.write_text(json.dumps(generated_plugins(PLUGINS), indent=2))
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            report = validate_files([str(path)])
            timings.append(time.perf_counter() - start)
        assert report.valid and len(report.plugins) == PLUGINS
    best, median = min(timings), statistics.median(timings)
    verdict = "ok" if median < TARGET_S else "OVER TARGET"
    print(
        f"tools validate, {PLUGINS} plugins: median {median * 1000:.0f} ms, "
        f"best {best * 1000:.0f} ms (target < {TARGET_S * 1000:.0f} ms) {verdict}"
    )


if __name__ == "__main__":
    main()
