"""vllm.oom and vllm.tool_flags: the model server's log and its command line."""

from __future__ import annotations

from pathlib import Path

from r1deploy.doctor.core import DoctorContext, Verdict, failed, passed, skipped, warned
from r1deploy.doctor.logs import recognise

# Where the stack directory is mounted in the containers (docs/stack-dir.md).
STACK_MOUNT = "/stack/"


def vllm_oom(ctx: DoctorContext) -> Verdict:
    vllm = ctx.settings.get("vllm") or {}
    if not ctx.native:
        service = vllm.get("service", "vllm")
        return skipped(
            f"the docker runtime keeps {service}'s log in docker, not read here "
            f"(make logs SERVICE={service})"
        )
    path = ctx.log_path("vllm")
    text = ctx.service_log("vllm")
    if text is None:
        return skipped(
            f"no readable log at {path} (the model server has not started here, or "
            "the doctor does not run as root)"
        )
    causes = [c for c in recognise(text, "vllm", ctx.settings) if c.id in ("kv-cache", "cuda-oom")]
    if not causes:
        return passed(f"{path}: no out-of-memory error", log=str(path))
    seen = "; ".join(f"{path}: {c.line}" for c in causes)
    cause = " and ".join(c.cause for c in causes)
    fix = causes[0].fix  # the KV cache fix first: it names what to change first
    data = {"log": str(path), "causes": [c.id for c in causes]}
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
            "/stack/chat_template.jinja; remove any of them from "
            "r1_stack_vllm_extra_args that conflicts",
            **data,
        )
    return passed(
        f"--enable-auto-tool-choice, --tool-call-parser {parsers[-1]}, "
        f"--chat-template {template_file} (exists)",
        **data,
    )
