"""Where to send load: endpoint, model and key from a stack dir (docs/stack-dir.md) or flags,
and what the server says about itself (model, max_model_len, version)."""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from r1deploy import modelserver
from r1deploy.stackdir import StackDir, StackDirError
from r1deploy.webui.client import SIGNIN_RATE_LIMIT

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
# Open WebUI's OpenAI-shaped routes (FACTS.md), for load that goes through the UI's backend.
WEBUI_PATHS = {
    "chat_path": "/api/chat/completions",
    "models_path": "/api/models",
    "version_path": "/api/version",
}
VIA = ("vllm", "webui")


class TargetError(Exception):
    """The endpoint, model or key cannot be used; the message says where, what and the fix."""


@dataclass
class Target:
    base_url: str
    model: str | None
    api_key: str | None = None
    chat_path: str = CHAT_PATH
    models_path: str = MODELS_PATH
    source: str = "flags"
    via: str = "vllm"
    version_path: str = "/version"
    # Open WebUI admin sign-in from the stack's .env, used when no key is given; never saved.
    credentials: dict | None = field(default=None, repr=False)
    server_args: list[str] | None = None  # the engine's flags as the stack dir rendered them
    extra: dict = field(default_factory=dict)
    # How to trust an https endpoint's certificate: a CA file (the stack's, for its front
    # door), or True: the system's.
    verify: str | bool = True
    # Through a front door: "front door" (else None). It hides the model server's own routes
    # (/tokenize, /version): those are asked of the model server behind it, with its own key.
    through: str | None = None
    inside_url: str | None = None
    inside_key: str | None = field(default=None, repr=False)

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + self.chat_path

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def inside_headers(self) -> dict[str, str]:
        """Headers for the model server behind the front door (its own key)."""
        headers = {"Content-Type": "application/json"}
        if self.inside_key:
            headers["Authorization"] = f"Bearer {self.inside_key}"
        return headers

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS trust for an https endpoint: the CA file alone, or the system's."""
        if isinstance(self.verify, str):
            return ssl.create_default_context(cafile=self.verify)
        return ssl.create_default_context()


def target_from_stack_dir(stack_dir: Path, via: str = "vllm", inside: bool = False) -> Target:
    """A rendered stack's endpoint: ``settings.json`` (url, model) and ``.env`` (key, or the
    Open WebUI admin sign-in with ``via="webui"``).

    With a front door (and not ``inside``) through it, as applications reach the stack: its
    URL from this host, the ``ops`` API key (or the admin sign-in, for Open WebUI behind it)
    and the stack's CA; ``inside``: the service behind it directly, for diagnosis."""
    try:
        stack = StackDir.load(stack_dir)
        url, model = stack.setting(via, "url"), stack.setting("model", "served_name")
        door = None if inside else stack.front_door()
    except StackDirError as exc:
        raise TargetError(f"{exc}; or give --base-url and --model") from None
    settings, env = stack.settings, stack.env
    target = Target(
        base_url=url,
        model=model,
        source=str(stack_dir),
        # The flags of the engine that runs (settings.json engine: vllm or llama_cpp).
        server_args=settings.get(
            "llamacpp" if settings.get("engine") == "llama_cpp" else "vllm", {}
        ).get("args"),
        extra={
            "max_model_len": settings.get("model", {}).get("max_model_len"),
            "profile": settings.get("profile"),
        },
    )
    if via == "webui":
        target.credentials = {
            "email": env.get("WEBUI_ADMIN_EMAIL"),
            "password": env.get("WEBUI_ADMIN_PASSWORD"),
        }
    else:
        target.api_key = env.get("VLLM_API_KEY") or None
    if door:
        target.base_url, target.verify, target.through = door.url, door.verify, "front door"
        if via == "vllm":
            target.inside_url, target.inside_key = url, target.api_key
            target.api_key = door.api_key
    return target


def resolve_target(
    stack_dir: str | None,
    base_url: str | None,
    model: str | None,
    api_key: str | None,
    via: str = "vllm",
    inside: bool = False,
) -> Target:
    """Flags win over the stack dir; the key may also come from ``OPENAI_API_KEY``.
    ``inside``: past the stack's front door, to the service behind it."""
    if stack_dir:
        target = target_from_stack_dir(Path(stack_dir), via, inside)
    elif base_url:
        target = Target(base_url=base_url, model=None)
    else:
        raise TargetError(
            "no endpoint: give --stack-dir DIR (a rendered stack, docs/stack-dir.md) or "
            "--base-url URL (e.g. http://127.0.0.1:8000)."
        )
    if base_url:
        target.base_url = base_url
        # Another endpoint: not the stack's front door; its own routes are its own.
        target.through = target.inside_url = target.inside_key = None
    if model:
        target.model = model
    target.api_key = api_key or target.api_key or os.environ.get("OPENAI_API_KEY") or None
    target.via = via
    if via == "webui":
        for name, value in WEBUI_PATHS.items():
            setattr(target, name, value)
    return target


async def webui_sign_in(session: aiohttp.ClientSession, target: Target) -> None:
    """Get an Open WebUI token with the stack's admin credentials (when no key was given)."""
    creds = target.credentials or {}
    if target.api_key or not creds:
        return
    url = target.base_url.rstrip("/") + "/api/v1/auths/signin"
    if not creds.get("email") or not creds.get("password"):
        raise TargetError(
            f"{target.source}/.env: WEBUI_ADMIN_EMAIL or WEBUI_ADMIN_PASSWORD missing, needed "
            "to sign in to Open WebUI. Fix: re-render the stack, or give --api-key."
        )
    try:
        async with session.post(url, json=creds) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise TargetError(
            f"{url}: sign-in failed ({type(exc).__name__}: {exc}). Fix: check "
            "Open WebUI is up (settings.json /webui/url)."
        ) from None
    if response.status == 429:
        raise TargetError(
            f"{url}: HTTP 429, Open WebUI allows {SIGNIN_RATE_LIMIT}. Fix: wait "
            "a few minutes, or give --api-key (an Open WebUI API key)."
        )
    if response.status != 200 or not isinstance(body, dict) or not body.get("token"):
        raise TargetError(
            f"{url}: HTTP {response.status}, sign-in refused. Fix: the stack's "
            ".env admin credentials must match Open WebUI's admin, or --api-key."
        )
    target.api_key = body["token"]


async def _get_json(session: aiohttp.ClientSession, url: str, headers: dict) -> tuple[int, object]:
    async with session.get(url, headers=headers) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return response.status, text


async def probe_server(session: aiohttp.ClientSession, target: Target) -> dict:
    """Check the endpoint answers and serves the model; return what it says about itself.

    Raises TargetError for an unreachable endpoint, a refused key or a model it does not serve.
    """
    base = target.base_url.rstrip("/")
    models_url = base + target.models_path
    await webui_sign_in(session, target)
    headers = target.headers()
    try:
        status, body = await _get_json(session, models_url, headers)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise TargetError(
            f"{models_url}: unreachable ({type(exc).__name__}: {exc}). Fix: check the server "
            "is running (r1deploy smoke / docker compose ps) and --base-url or the stack's "
            "settings.json /vllm/url."
        ) from None
    if status in (401, 403):
        raise TargetError(
            f"{models_url}: HTTP {status}, the API key was refused. Fix: --api-key-file, "
            "OPENAI_API_KEY, or "
            + (
                "API_KEY_OPS in the stack's .env (the front door's ops key; --inside: past it)."
                if target.through
                else "VLLM_API_KEY in the stack's .env."
            )
        )
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise TargetError(
            f"{models_url}: HTTP {status}, not an OpenAI model list ({str(body)[:200]!r}). "
            "Fix: --base-url must be the server root (no /v1)."
        )
    served = {entry.get("id"): entry for entry in body["data"] if isinstance(entry, dict)}
    if not served:
        raise TargetError(f"{models_url}: the server lists no models. Fix: check the server logs.")
    if target.model is None:
        target.model = next(iter(served))
    elif target.model not in served:
        raise TargetError(
            f"model {target.model!r} is not served by {base} (it serves: "
            f"{', '.join(sorted(served))}). Fix: --model with one of those, or the stack's "
            "settings.json /model/served_name."
        )
    entry = served[target.model]
    # Which server it is decides how the tokenizer is asked (r1deploy/modelserver.py).
    target.extra["server_kind"] = modelserver.kind_of(entry)
    info = {
        "model": target.model,
        "model_root": entry.get("root"),
        "max_model_len": modelserver.max_model_len_of(entry),
        "owned_by": entry.get("owned_by"),
        "version": None,
        "via": target.via,
    }
    # vLLM says its version at /version; llama.cpp its build (b<number>-<commit>) in /props.
    llamacpp = target.via == "vllm" and info["owned_by"] == modelserver.LLAMACPP
    version_path, field = ("/props", "build_info") if llamacpp else (target.version_path, "version")
    if target.inside_url:  # behind a front door, which does not pass these on
        base, headers = target.inside_url.rstrip("/"), target.inside_headers()
    try:
        status, version = await _get_json(session, base + version_path, headers)
        if status == 200 and isinstance(version, dict):
            info["version"] = version.get(field)
            if llamacpp:
                info["slots"] = version.get("total_slots")
    except (aiohttp.ClientError, OSError, TimeoutError):
        pass
    if target.server_args is not None:
        info["server_args"] = target.server_args
    return info
