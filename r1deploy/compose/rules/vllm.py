"""vLLM's flags: what vLLM refuses, what silently breaks tool calling, and what does not fit
the served model. The model's numbers come from r1deploy/model_facts.json: the facts of the
model the command names when the file knows it, the R1 distill's otherwise."""

from __future__ import annotations

from r1deploy import modelfacts
from r1deploy.compose.registry import RULES
from r1deploy.compose.services import ComposeFile, argv, is_vllm, options, parse_len, served_model
from r1deploy.diagnostics import Findings

VLLM_FLAGS = RULES["vllm-flags"]


def served_facts(model: str) -> tuple[str, dict, str]:
    """(model id, facts, note) for the model a command names. The note says, after a number
    from the facts, whose number it is when the file does not know the model."""
    match = modelfacts.find(model) if model else None
    if match:
        return match[0], match[1], ""
    why = (
        f"r1deploy/model_facts.json has no facts for {model}"
        if model
        else "the command names no model"
    )
    return (
        modelfacts.R1_DISTILL,
        modelfacts.model(modelfacts.R1_DISTILL),
        f" (the R1 distill's: {why})",
    )


def _divisors(number: int) -> str:
    found = [str(n) for n in range(1, number + 1) if number % n == 0]
    return ", ".join(found[:-1]) + " or " + found[-1] if len(found) > 1 else found[0]


def check(compose: ComposeFile, found: Findings) -> None:
    for name, service in compose.services.items():
        if is_vllm(service):
            _check_service(name, service, found)


def _check_service(name: str, service: dict, found: Findings) -> None:
    flags = options(argv(service))
    model_id, facts, note = served_facts(served_model(service))
    base = ("services", name)

    def at(flag: str) -> tuple:
        return base + flags[flag][1]

    if "--enable-reasoning" in flags:
        found.add(
            at("--enable-reasoning"),
            VLLM_FLAGS,
            f"service {name}: --enable-reasoning was removed from vLLM and is rejected",
            "drop it; --reasoning-parser deepseek_r1 alone turns reasoning on",
        )
    heads = int(facts["num_attention_heads"])
    tp_fix = f"set --tensor-parallel-size to {_divisors(heads)}"
    tp_flag = "--tensor-parallel-size" if "--tensor-parallel-size" in flags else "-tp"
    if tp_flag in flags:
        text = flags[tp_flag][0] or ""
        if not text.isdigit() or int(text) < 1:
            found.add(
                at(tp_flag),
                VLLM_FLAGS,
                f"service {name}: tensor parallel size {text!r} is not a positive integer",
                tp_fix,
            )
        elif heads % int(text):
            found.add(
                at(tp_flag),
                VLLM_FLAGS,
                f"service {name}: tensor parallel size {text} does not divide the "
                f"model's {heads} attention heads{note}",
                tp_fix,
            )
    if "--max-model-len" in flags:
        _check_max_model_len(
            name, flags["--max-model-len"][0] or "", facts, note, at("--max-model-len"), found
        )
    if "--gpu-memory-utilization" in flags:
        text = flags["--gpu-memory-utilization"][0] or ""
        try:
            share = float(text)
        except ValueError:
            share = None
        if share is None or not 0 < share <= 1:
            found.add(
                at("--gpu-memory-utilization"),
                VLLM_FLAGS,
                f"service {name}: --gpu-memory-utilization {text} is not in (0, 1]",
                "set the share of GPU memory vLLM may use, e.g. 0.9",
            )
    _check_tool_calling(name, flags, model_id, at, found)
    if service.get("ipc") != "host" and "shm_size" not in service:
        found.add(
            base,
            VLLM_FLAGS,
            f"service {name}: neither ipc: host nor shm_size; vLLM's workers run out "
            "of shared memory in the default 64 MB",
            "add ipc: host",
            severity="warning",
        )


def _check_max_model_len(
    name: str, text: str, facts: dict, note: str, where: tuple, found: Findings
) -> None:
    limit = int(facts["max_position_embeddings"])
    length = parse_len(text)
    if length is None or length < 1:
        found.add(
            where,
            VLLM_FLAGS,
            f"service {name}: --max-model-len {text!r} is not a positive number of tokens",
            "set it to a number of tokens, e.g. 4096",
        )
    elif length > limit:
        found.add(
            where,
            VLLM_FLAGS,
            f"service {name}: --max-model-len {length} exceeds the model's "
            f"{limit} tokens (max_position_embeddings){note}",
            f"set it to at most {limit} (r1_stack_max_model_len: auto sizes it to the host)",
        )


def _check_tool_calling(name: str, flags: dict, model_id: str, at, found: Findings) -> None:
    auto, parser = "--enable-auto-tool-choice" in flags, "--tool-call-parser" in flags
    if auto and not parser:
        found.add(
            at("--enable-auto-tool-choice"),
            VLLM_FLAGS,
            f"service {name}: --enable-auto-tool-choice without --tool-call-parser: "
            "vLLM refuses to start",
            "add --tool-call-parser hermes (the format the R1 tools template teaches)",
        )
    if parser and not auto:
        found.add(
            at("--tool-call-parser"),
            VLLM_FLAGS,
            f"service {name}: --tool-call-parser without --enable-auto-tool-choice: "
            "tool calls in the model's text are never parsed",
            "add --enable-auto-tool-choice",
        )
    if auto and "--chat-template" not in flags and model_id == modelfacts.R1_DISTILL:
        found.add(
            at("--enable-auto-tool-choice"),
            VLLM_FLAGS,
            f"service {name}: no --chat-template: the R1 distill's own template drops "
            "the request's tools, so function calling never triggers",
            "pass --chat-template with the shipped R1 tools template "
            "(compose/chat_template_r1_tools.jinja)",
            severity="warning",
        )
