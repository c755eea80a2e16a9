"""tools.strict: whether vLLM holds the model's calls to each tool's schema."""

from __future__ import annotations

import json

from r1deploy.doctor.core import DoctorContext, Verdict, passed, skipped, warned
from r1deploy.tools import strict
from r1deploy.tools.export import is_strict


def tools_strict(ctx: DoctorContext) -> Verdict:
    """vLLM 0.32 constrains a tool call's arguments to the schema only for a strict tool; a
    tool that is not gets whatever arguments the model writes (docs/tools.md)."""
    tools_file = ctx.stack.file("tools_file", "tools.json")
    try:
        plugins = json.loads(tools_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return skipped(f"{tools_file} is not readable here: {exc}")
    loose, data = [], {}
    for plugin in plugins:
        name = plugin.get("name", "?")
        data[name] = is_strict(plugin)
        if data[name]:
            continue
        if plugin.get("strict") is False:
            loose.append(f"{name} (strict: false in the file)")
        else:
            first = next(strict.violations(plugin.get("params")), None)
            why = f": {first[1]}" if first else ""
            loose.append(f"{name} (its params cannot be strict{why})")
    if not loose:
        return passed(f"each of the {len(data)} tools of {tools_file} is strict", tools=data)
    return warned(
        f"{tools_file}: not strict: " + "; ".join(loose),
        "vLLM holds a call's arguments to the schema only for strict tools: the model's calls "
        "to these may carry arguments the gateway refuses (HTTP 400, invalid_arguments), and "
        "the answer goes on without the tool",
        'set "strict": true on each of them in tools.json (r1_stack_tools_file): then '
        "r1deploy tools validate names each part of its params that strict mode refuses, "
        "and how to change it; then make deploy",
        tools=data,
    )
