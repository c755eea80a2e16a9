"""vllm.oom, vllm.tool_flags and vllm.context_pressure: the model server's log, its command
line and its /metrics."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from r1deploy.doctor.core import DoctorContext, Verdict, failed, passed, skipped, warned
from r1deploy.doctor.logs import oom_numbers, recognise
from r1deploy.top.figures import FINISHED, buckets, by_label, parse

# Where the stack directory is mounted in the containers (docs/stack-dir.md).
STACK_MOUNT = "/stack/"


def vllm_oom(ctx: DoctorContext) -> Verdict:
    vllm = ctx.settings.get("vllm") or {}
    # The native runtime runs the model server as its service `vllm` in either profile.
    service = "vllm" if ctx.native else vllm.get("service", "vllm")
    path = ctx.log_name(service)
    text = ctx.service_log(service)
    if text is None:
        return skipped(
            f"no readable log: {path} (the model server has not started here, or the doctor "
            "does not run as root)"
        )
    causes = [c for c in recognise(text, "vllm", ctx.settings) if c.id in ("kv-cache", "cuda-oom")]
    if not causes:
        return passed(f"{path}: no out-of-memory error", log=str(path))
    seen = "; ".join(f"{path}: {c.line}" for c in causes)
    cause = " and ".join(c.cause for c in causes)
    numbers = oom_numbers(ctx.settings)
    if numbers:
        cause = f"{cause} ({numbers})"
    fix = causes[0].fix  # the KV cache fix first: it names what to change first
    data = {"log": str(path), "causes": [c.id for c in causes], "numbers": numbers}
    url = vllm.get("url")
    if url and ctx.probe(f"{url.rstrip('/')}/health").up:
        return warned(
            seen,
            f"{cause}; the server answers now (it restarted, or the error was "
            "one request's): it may fail again under load",
            fix,
            **data,
        )
    return failed(seen, cause, fix, **data)


def _flag_values(args: list[str], flag: str) -> list[str | None]:
    """Each value given to ``flag`` (``--f v`` or ``--f=v``; None when it has none)."""
    values = []
    for index, arg in enumerate(args):
        if arg == flag:
            following = args[index + 1] if index + 1 < len(args) else None
            values.append(None if following is None or following.startswith("--") else following)
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1] or None)
    return values


# A tool whose name only a template that renders a request's tools puts into the prompt.
PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": "r1deploy_doctor_probe",
        "description": "a tool the doctor offers to see whether the template shows it",
        "parameters": {"type": "object", "properties": {}},
    },
}


def _template_drops_tools(path: Path) -> str | None:
    """Why the chat template at ``path`` would not show a request's tools to the model (the
    model's own R1 template drops them), or None. Rendered as vLLM renders it: a sandboxed
    Jinja environment with transformers' options and helpers."""
    import jinja2  # Ansible's own dependency
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = raise_exception
    try:
        prompt = env.from_string(path.read_text(encoding="utf-8")).render(
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=[PROBE_TOOL],
            add_generation_prompt=True,
            bos_token="",
            eos_token="",
        )
    except (OSError, UnicodeDecodeError, jinja2.TemplateError) as exc:
        return f"does not render ({type(exc).__name__}: {exc})"
    if PROBE_TOOL["function"]["name"] not in prompt:
        return (
            "drops a request's tools: rendered with one, its prompt does not name it "
            "(the model's own template, not the tools template r1deploy ships)"
        )
    return None


def _stack_file(ctx: DoctorContext, value: str) -> Path:
    """The path of the stack directory a server argument means (/stack/x: <stack>/x)."""
    if value.startswith(STACK_MOUNT):
        return ctx.stack.path / value[len(STACK_MOUNT) :]
    path = Path(value)
    return path if path.is_absolute() else ctx.stack.path / path


def vllm_tool_flags(ctx: DoctorContext) -> Verdict:
    vllm = ctx.settings.get("vllm") or {}
    args = vllm.get("args")
    if not isinstance(args, list):
        return failed(
            "settings.json has no vllm.args",
            "the stack was rendered by an older role, or settings.json was edited",
            "render the stack again: make deploy (or make render)",
        )
    args = [str(a) for a in args]
    missing = []
    if not _flag_values(args, "--enable-auto-tool-choice"):
        missing.append("--enable-auto-tool-choice is not given")
    parsers = [v for v in _flag_values(args, "--tool-call-parser") if v]
    if not parsers:
        missing.append("--tool-call-parser has no value (hermes for the R1 tools template)")
    templates = [v for v in _flag_values(args, "--chat-template") if v]
    template_file = None
    if not templates:
        missing.append("--chat-template is not given (the R1 template ignores tools)")
    else:
        template_file = _stack_file(ctx, templates[-1])
        if not template_file.is_file():
            missing.append(
                f"--chat-template {templates[-1]} names {template_file}, which does not exist"
            )
        else:
            problem = _template_drops_tools(template_file)
            if problem:
                missing.append(f"--chat-template {template_file} {problem}")
    data = {
        "args": args,
        "tool_call_parser": parsers[-1] if parsers else None,
        "chat_template": str(template_file) if template_file else None,
    }
    if missing:
        return failed(
            "settings.json vllm.args: " + "; ".join(missing),
            "tool calls never trigger: vLLM does not offer the tools to the model or "
            "does not parse its calls",
            "render the stack again with the current role (make deploy): it gives "
            "--enable-auto-tool-choice --tool-call-parser hermes --chat-template "
            "/stack/chat_template.jinja (the tools template, compose/"
            "chat_template_r1_tools.jinja); remove any of them from "
            "r1_stack_vllm_extra_args that conflicts",
            **data,
        )
    return passed(
        f"--enable-auto-tool-choice, --tool-call-parser {parsers[-1]}, "
        f"--chat-template {template_file} (exists)",
        **data,
    )


# vLLM's histograms of each finished request's prompt and generated tokens: their buckets are
# 1, 2, 5, 10, ... up to max_model_len (build_1_2_5_buckets), then +Inf.
PROMPT_TOKENS, GENERATION_TOKENS = "vllm:request_prompt_tokens", "vllm:request_generation_tokens"
# A request is near the context when it is in a bucket that reaches this share of it.
NEAR_SHARE = 0.9


def _near(cumulative: list[tuple[float, float]], near: float) -> tuple[int, int, float]:
    """(requests in the buckets that reach ``near``, all requests, where those buckets
    start): the +Inf bucket reaches it too, since nothing longer than the context fits."""
    total = cumulative[-1][1] if cumulative else 0.0
    start, below = 0.0, 0.0
    for upper, count in cumulative:
        if upper < near:
            start, below = upper, count
    return int(total - below), int(total), start


def vllm_context_pressure(ctx: DoctorContext) -> Verdict:
    url = (ctx.settings.get("vllm") or {}).get("url")
    context = int((ctx.settings.get("model") or {}).get("max_model_len") or 0)
    if not url or not context:
        return skipped("settings.json has no vllm.url or model.max_model_len")
    metrics_url = f"{url.rstrip('/')}/metrics"
    try:
        response = ctx.http.get(metrics_url, timeout=ctx.timeout_s)
    except httpx.HTTPError as exc:
        return skipped(f"{metrics_url} does not answer ({type(exc).__name__})")
    if response.status_code != 200:
        return skipped(f"{metrics_url} answers HTTP {response.status_code}")
    scrape = parse(response.text, time.monotonic())
    if not scrape.ok:
        return skipped(f"{metrics_url}: {scrape.error}")
    prompt = buckets(scrape, (PROMPT_TOKENS,))
    generation = buckets(scrape, (GENERATION_TOKENS,))
    if prompt is None or generation is None:
        return skipped(f"{metrics_url} has no {PROMPT_TOKENS} histogram (not vLLM: llama.cpp)")
    near = NEAR_SHARE * context
    long_prompts, requests, prompt_from = _near(prompt, near)
    long_answers, _, answer_from = _near(generation, near)
    cut = int(by_label(scrape, FINISHED, "finished_reason").get("length", 0))
    data = {
        "max_model_len": context,
        "requests": requests,
        "long_prompts": long_prompts,
        "long_prompts_over": prompt_from,
        "long_answers": long_answers,
        "long_answers_over": answer_from,
        "finished_by_length": cut,
    }
    found = []
    if long_prompts:
        found.append(f"{long_prompts} with a prompt over {prompt_from:.0f} tokens")
    if long_answers:
        found.append(f"{long_answers} that generated over {answer_from:.0f} tokens")
    if cut:
        found.append(f"{cut} stopped at their token limit (finished_reason length)")
    since = f"of {requests} requests since the model server started"
    if not found:
        return passed(
            f"none {since} came near max_model_len {context} (none stopped at its limit)",
            **data,
        )
    return warned(
        f"{'; '.join(found)} ({since}, max_model_len {context})",
        f"chats come near the context of {context} tokens (vLLM's buckets reaching "
        f"{NEAR_SHARE:.0%} of it): a long chat leaves R1 too little room to think and answer, "
        "so answers stop half-way, repeat themselves or never come",
        f"raise r1_stack_max_model_len (now {context}; docs/context-budget.md says what the "
        "GPU holds), then make deploy; or start a new chat, or shorten it (Open WebUI sends "
        "the whole conversation every turn); webui.sampling checks the sampling that keeps "
        "R1 from looping",
        **data,
    )
