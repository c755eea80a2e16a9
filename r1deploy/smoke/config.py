"""Where the smoke checks point: a rendered stack directory (``.env`` + ``settings.json``,
see docs/stack-dir.md) and/or flags. Flags win over the stack directory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from r1deploy.stackdir import FrontDoor, StackDir, StackDirError


class ConfigError(ValueError):
    """The checks cannot run: a missing or unreadable setting, with where and the fix."""


@dataclass
class SmokeConfig:
    vllm_url: str | None = None
    vllm_key: str | None = None
    model: str | None = None
    max_model_len: int | None = None
    webui_url: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None
    gateway_enabled: bool = False
    gateway_url: str | None = None
    gateway_key: str | None = None
    tools: list[dict] = field(default_factory=list)  # the openai export of tools.json
    tool_name: str | None = None  # the tool the tool-call check asks for
    # Open WebUI's tool ids of the gateway (settings.json webui.model.tool_ids) and the prompt
    # size the context was sized for (model.prompt_budget): the UI-path chat check's inputs.
    webui_tool_ids: list[str] = field(default_factory=list)
    prompt_budget: int | None = None
    timeout_s: float = 60.0
    quality: bool = False
    source: str = "flags"  # what the values came from, for messages
    # The model server's and Open WebUI's /health, on the inside (the front door does not
    # pass /health on); empty: vllm_url's and webui_url's.
    health_url: str | None = None
    webui_health_url: str | None = None
    # The front door (settings.json front_door) when the checks go through it: its URLs,
    # and how to trust its certificate (a CA file; True: the system's).
    front_door: dict | None = None
    verify: str | bool = True
    # The model server itself behind a front door, for what the front door does not pass
    # on (/metrics, which Prometheus scrapes on the inside): its URL and its own key.
    inside_vllm_url: str | None = None
    inside_vllm_key: str | None = None


def _through_front_door(config: SmokeConfig, door: FrontDoor) -> None:
    """Point the checks at the front door, as people and applications reach the stack: Open
    WebUI at its URL, the OpenAI API with the ops key; the model server's health stays inside."""
    config.health_url = f"{config.vllm_url}/health"
    config.inside_vllm_url, config.inside_vllm_key = config.vllm_url, config.vllm_key
    config.webui_health_url = f"{config.webui_url}/health" if config.webui_url else None
    config.vllm_url, config.vllm_key = door.url, door.api_key
    config.webui_url = door.url
    config.front_door = door.settings
    config.verify = door.verify


def _read_secret(path: str, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"the {what} file {path} is empty")
    return value


def _load_tools(stack: Path, settings: dict) -> list[dict]:
    exported = stack / "tools.openai.json"
    if exported.is_file():
        try:
            return json.loads(exported.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{exported}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}"
                "\n    fix: re-render the stack (make render)"
            ) from exc
    tools_file = stack / settings.get("tools_file", "tools.json")
    if not tools_file.is_file():
        return []
    from r1deploy.tools import load_plugins, to_openai

    return to_openai(load_plugins(str(tools_file)))


def _read_stack(stack: Path) -> StackDir:
    """The stack directory, read once (settings.json and .env): StackDir is the one reader."""
    if not (stack / "settings.json").is_file():
        raise ConfigError(
            f"{stack / 'settings.json'} not found: --stack-dir must be a rendered "
            "stack directory (docs/stack-dir.md)\n    fix: make render, or give "
            "--vllm and --webui instead"
        )
    try:
        return StackDir.load(stack)
    except StackDirError as exc:
        raise ConfigError(str(exc)) from exc


def _from_stack_dir(stackdir: StackDir) -> SmokeConfig:
    settings, env, stack = stackdir.settings, stackdir.env, stackdir.path
    model = settings.get("model", {})
    vllm = settings.get("vllm", {})
    webui = settings.get("webui", {})
    gateway = settings.get("gateway", {})
    return SmokeConfig(
        vllm_url=vllm.get("url"),
        vllm_key=env.get("VLLM_API_KEY"),
        model=model.get("served_name"),
        max_model_len=model.get("max_model_len"),
        webui_url=webui.get("url"),
        admin_email=env.get("WEBUI_ADMIN_EMAIL") or webui.get("admin_email"),
        admin_password=env.get("WEBUI_ADMIN_PASSWORD"),
        gateway_enabled=bool(gateway.get("enabled")),
        gateway_url=gateway.get("url"),
        gateway_key=env.get("TOOLS_GATEWAY_KEY"),
        tools=_load_tools(stack, settings),
        webui_tool_ids=list((webui.get("model") or {}).get("tool_ids") or []),
        prompt_budget=model.get("prompt_budget"),
        source=str(stack),
    )


def load_config(args) -> SmokeConfig:
    """Build the config from ``args`` (the CLI namespace): stack dir first, then flags."""
    config = SmokeConfig()
    if args.stack_dir:
        stackdir = _read_stack(Path(args.stack_dir))
        config = _from_stack_dir(stackdir)
        if not getattr(args, "inside", False):
            try:
                door = stackdir.front_door()
            except StackDirError as exc:
                raise ConfigError(str(exc)) from exc
            if door:
                _through_front_door(config, door)
    overrides = {
        "vllm_url": args.vllm,
        "webui_url": args.webui,
        "model": args.model,
        "max_model_len": args.max_model_len,
        "admin_email": args.admin_email,
        "gateway_url": args.gateway,
        "tool_name": args.tool,
    }
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    if args.gateway:
        config.gateway_enabled = True
    if args.vllm_key_file:
        config.vllm_key = _read_secret(args.vllm_key_file, "vLLM API key")
    if args.admin_password_file:
        config.admin_password = _read_secret(args.admin_password_file, "Open WebUI admin password")
    if args.gateway_key_file:
        config.gateway_key = _read_secret(args.gateway_key_file, "tool gateway key")
    if args.tools:
        from r1deploy.tools import ToolsFileError, load_plugins, to_openai

        try:
            config.tools = to_openai(load_plugins(args.tools))
        except ToolsFileError as exc:
            raise ConfigError(f"{args.tools}: not a valid tools file:\n{exc}") from exc
    config.timeout_s = args.timeout
    config.quality = args.quality
    if not (config.vllm_url or config.webui_url):
        raise ConfigError(
            "nothing to check: give --stack-dir DIR (a rendered stack) or "
            "--vllm URL and/or --webui URL"
        )
    for url in (config.vllm_url, config.webui_url, config.gateway_url):
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"not an http(s) URL: {url!r}\n    fix: e.g. http://127.0.0.1:8000")
    for attr in ("vllm_url", "webui_url", "gateway_url"):
        if getattr(config, attr):
            setattr(config, attr, getattr(config, attr).rstrip("/"))
    return config
