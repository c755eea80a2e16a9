"""Make a running Open WebUI match the stack directory, item by item, idempotently.

Open WebUI's environment only seeds its database on the first start; afterwards the
database wins. So the desired state is the environment the stack gives Open WebUI (the
webui service of compose.yaml, secrets filled from .env): what seeded the first start is
what every later deploy enforces. The served model's entry (capabilities, sampling,
max_tokens, tools, who may use it) has no environment variable: it comes from
settings.json's ``webui.model``. Each item is read first and written only when it
differs, and reported changed/unchanged, so Ansible can use ``changed_when``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from dotenv import dotenv_values

from r1deploy.compose.interpolation import MissingVariable
from r1deploy.compose.interpolation import interpolate as compose_interpolate
from r1deploy.stackdir import StackDir, StackDirError
from r1deploy.webui.client import WebUIClient, WebUIError

# Fields Open WebUI fills in when it stores a tool server connection (configs.py).
TOOL_SERVER_DEFAULTS = {"type": "openapi", "forward_cookies": False, "headers": None, "info": None}


# Open WebUI's access grant that lets every signed-in user read (use) an item; without one a
# model entry is visible to its owner and admins only.
EVERYONE_READS = {"principal_type": "user", "principal_id": "*", "permission": "read"}


@dataclass
class ModelEntry:
    """The served model as Open WebUI shows it (settings.json webui.model): its entry in the
    model picker and the defaults of every chat with it."""

    id: str
    name: str
    description: str
    image_url: str
    capabilities: dict
    params: dict
    default_tool_ids: list[str]

    # meta and params keys this entry owns; any other key an admin set in the UI is kept.
    OWNED_META = ("description", "capabilities", "toolIds", "profile_image_url")
    # No system prompt (DeepSeek's advice for R1): an inherited one is removed.
    OWNED_PARAMS = ("temperature", "top_p", "max_tokens", "system")

    def meta(self) -> dict:
        return {
            "description": self.description,
            "capabilities": dict(self.capabilities),
            "toolIds": list(self.default_tool_ids),
            "profile_image_url": self.image_url or None,
        }

    def apply_to(self, current: dict | None) -> dict:
        """The whole model form to send: the current entry with the owned keys replaced."""
        current = current or {}
        meta = {k: v for k, v in (current.get("meta") or {}).items() if v is not None}
        meta.update(self.meta())
        params = {
            k: v for k, v in (current.get("params") or {}).items() if k not in self.OWNED_PARAMS
        }
        params.update(self.params)
        return {
            "id": self.id,
            "base_model_id": None,
            "name": self.name,
            "meta": meta,
            "params": params,
            "is_active": True,
        }

    def differences(self, current: dict | None) -> list[str]:
        """What differs between the current entry and this one (empty: nothing)."""
        if current is None:
            return ["missing"]
        meta = current.get("meta") or {}
        params = current.get("params") or {}
        wanted_meta = self.meta()
        found = [f"meta.{k}" for k in self.OWNED_META if meta.get(k) != wanted_meta[k]]
        found += [f"params.{k}" for k in self.OWNED_PARAMS if params.get(k) != self.params.get(k)]
        found += [k for k in ("name",) if current.get(k) != self.name]
        if current.get("base_model_id") is not None:
            found.append("base_model_id")
        if current.get("is_active") is False:
            found.append("is_active")
        return found


@dataclass
class Desired:
    openai_base_urls: list[str]
    openai_api_keys: list[str]
    tool_servers: list[dict]
    enable_signup: bool
    default_models: str | None
    model: ModelEntry | None = None


@dataclass
class ItemResult:
    item: str
    changed: bool
    detail: str
    ok: bool = True


@dataclass
class Outcome:
    items: list[ItemResult] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(i.changed for i in self.items)

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.items)

    def to_dict(self) -> dict:
        return {"changed": self.changed, "ok": self.ok, "items": [asdict(i) for i in self.items]}


def interpolate(value: str, env: dict[str, str], where: str) -> str:
    try:
        return compose_interpolate(value, env, where)
    except MissingVariable as exc:
        raise StackDirError(str(exc)) from None


def webui_environment(stack: StackDir) -> dict[str, str]:
    """The environment compose.yaml gives the Open WebUI service, secrets filled in.

    The native runtime (settings.json runtime "native") runs Open WebUI outside compose:
    its process gets native/env/open-webui.env, which roles/r1_native derives from the same
    compose service (host URLs instead of service names); that file is the desired state.
    """
    if stack.settings.get("runtime") == "native":
        native_env = stack.path / "native" / "env" / "open-webui.env"
        if not native_env.exists():
            raise StackDirError(
                f"{native_env} does not exist: the native runtime writes it when it starts "
                "the stack (make deploy / make demo)"
            )
        return {k: v or "" for k, v in dotenv_values(native_env).items()}
    compose_file = stack.path / "compose.yaml"
    try:
        compose = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StackDirError(f"cannot read {compose_file}: {exc.strerror}") from None
    service = stack.setting("webui", "service")
    try:
        environment = compose["services"][service]["environment"]
    except (KeyError, TypeError):
        raise StackDirError(
            f"{compose_file}: /services/{service}/environment is missing; render the stack again"
        ) from None
    if isinstance(environment, list):  # the KEY=value list form
        environment = dict(item.split("=", 1) for item in environment)
    where = f"{compose_file} /services/{service}/environment"
    return {
        str(k): interpolate(str(v), stack.env, f"{where}/{k}")
        for k, v in environment.items()
        if v is not None
    }


def _split(value: str | None) -> list[str]:
    return value.split(";") if value else []


def desired_from_stack(stack: StackDir) -> Desired:
    env = webui_environment(stack)
    urls = _split(env.get("OPENAI_API_BASE_URLS")) or _split(env.get("OPENAI_API_BASE_URL"))
    keys = _split(env.get("OPENAI_API_KEYS")) or _split(env.get("OPENAI_API_KEY"))
    keys = (keys + [""] * len(urls))[: len(urls)]
    try:
        tool_servers = json.loads(env.get("TOOL_SERVER_CONNECTIONS") or "[]")
    except ValueError as exc:
        raise StackDirError(
            f"compose.yaml: Open WebUI's TOOL_SERVER_CONNECTIONS is not JSON: {exc}"
        ) from None
    return Desired(
        openai_base_urls=urls,
        openai_api_keys=keys,
        tool_servers=[normalise_tool_server(c) for c in tool_servers],
        # Closed unless the stack opens it explicitly.
        enable_signup=env.get("ENABLE_SIGNUP", "false").strip().lower() == "true",
        default_models=env.get("DEFAULT_MODELS")
        or stack.settings.get("model", {}).get("served_name"),
        model=model_entry_from_stack(stack),
    )


def model_entry_from_stack(stack: StackDir) -> ModelEntry | None:
    """settings.json's webui.model for the served model; None for a stack rendered before
    the role wrote it (reconcile then leaves the entry alone)."""
    wanted = (stack.settings.get("webui") or {}).get("model")
    if not wanted:
        return None
    return ModelEntry(
        id=stack.setting("model", "served_name"),
        name=wanted.get("name") or stack.setting("model", "served_name"),
        description=wanted.get("description", ""),
        image_url=wanted.get("image_url", ""),
        capabilities=dict(wanted.get("capabilities") or {}),
        params=dict(wanted.get("params") or {}),
        default_tool_ids=list(wanted.get("default_tool_ids") or []),
    )


def normalise_tool_server(connection: dict) -> dict:
    return {**TOOL_SERVER_DEFAULTS, **connection}


def _server_name(connection: dict) -> str:
    info = connection.get("info") or {}
    return str(info.get("id") or connection.get("url"))


# --- one function per item ---------------------------------------------------------------


def _openai(client: WebUIClient, desired: Desired, apply: bool) -> ItemResult:
    current = client.openai_config()
    wanted = (True, desired.openai_base_urls, desired.openai_api_keys)
    have = (
        current.get("ENABLE_OPENAI_API"),
        current.get("OPENAI_API_BASE_URLS"),
        current.get("OPENAI_API_KEYS"),
    )
    detail = ", ".join(desired.openai_base_urls)
    if have == wanted:
        return ItemResult("openai_connections", False, detail)
    if apply:
        old_urls = current.get("OPENAI_API_BASE_URLS") or []
        old_configs = current.get("OPENAI_API_CONFIGS") or {}
        # Keep per-connection settings (prefix, model filter) where the URL stayed put.
        configs = {
            str(i): old_configs[str(i)]
            for i, url in enumerate(desired.openai_base_urls)
            if i < len(old_urls) and old_urls[i] == url and str(i) in old_configs
        }
        client.set_openai_config(
            {
                "ENABLE_OPENAI_API": True,
                "OPENAI_API_BASE_URLS": desired.openai_base_urls,
                "OPENAI_API_KEYS": desired.openai_api_keys,
                "OPENAI_API_CONFIGS": configs,
            }
        )
    return ItemResult("openai_connections", True, detail)


def _tool_servers(client: WebUIClient, desired: Desired, apply: bool) -> ItemResult:
    current = [normalise_tool_server(c) for c in client.tool_servers()]
    detail = ", ".join(_server_name(c) for c in desired.tool_servers) or "none"
    if current == desired.tool_servers:
        return ItemResult("tool_servers", False, detail)
    if apply:
        client.set_tool_servers(desired.tool_servers)
    return ItemResult("tool_servers", True, detail)


def _signup(client: WebUIClient, desired: Desired, apply: bool) -> ItemResult:
    current = client.admin_config()
    detail = "open" if desired.enable_signup else "closed"
    if current.get("ENABLE_SIGNUP") == desired.enable_signup:
        return ItemResult("signup", False, detail)
    if apply:
        # The endpoint takes the whole form: send back what it gave, with the one change.
        client.set_admin_config({**current, "ENABLE_SIGNUP": desired.enable_signup})
    return ItemResult("signup", True, detail)


def _default_model(client: WebUIClient, desired: Desired, apply: bool) -> ItemResult:
    current = client.models_config()
    detail = desired.default_models or "none"
    if desired.default_models is None or current.get("DEFAULT_MODELS") == desired.default_models:
        return ItemResult("default_model", False, detail)
    if apply:
        client.set_models_config({**current, "DEFAULT_MODELS": desired.default_models})
    return ItemResult("default_model", True, detail)


def _model(client: WebUIClient, desired: Desired, apply: bool) -> ItemResult:
    wanted = desired.model
    if wanted is None:
        return ItemResult("model", False, "not in settings.json (render the stack again)")
    current = client.model_entry(wanted.id)
    differs = wanted.differences(current)
    grants = [] if current is None else current.get("access_grants") or []
    public = any(_grant(g) == EVERYONE_READS for g in grants)
    if not public:
        differs.append("access_grants")
    detail = f"{wanted.id}: " + (", ".join(differs) if differs else "as the stack says")
    if not differs:
        return ItemResult("model", False, detail)
    if apply:
        form = wanted.apply_to(current)
        if current is None:
            client.create_model({**form, "access_grants": [EVERYONE_READS]})
        else:
            if set(differs) - {"access_grants"}:
                client.update_model(form)
            if not public:
                client.set_model_access(wanted.id, [*map(_grant, grants), EVERYONE_READS])
    return ItemResult("model", True, detail)


def _grant(grant: dict) -> dict:
    return {k: grant.get(k) for k in ("principal_type", "principal_id", "permission")}


def _verify_tool_servers(client: WebUIClient, desired: Desired) -> list[ItemResult]:
    results = []
    for connection in desired.tool_servers:
        if not (connection.get("config") or {}).get("enable", True):
            continue
        name = f"tool_server_verify:{_server_name(connection)}"
        try:
            spec = client.verify_tool_server(connection)
        except WebUIError as exc:
            results.append(ItemResult(name, False, f"Open WebUI cannot use it: {exc}", ok=False))
            continue
        operations = len(spec.get("paths", {})) if isinstance(spec, dict) else 0
        ok = operations > 0
        detail = f"{operations} operations" if ok else f"no operations in its spec: {spec!r:.200}"
        results.append(ItemResult(name, False, detail, ok=ok))
    return results


ITEMS = (_openai, _tool_servers, _signup, _default_model, _model)


def reconcile(
    client: WebUIClient, desired: Desired, *, apply: bool = True, verify: bool = True
) -> Outcome:
    """Bring each item to the desired state (``apply=False``: only report what differs)."""
    outcome = Outcome([item(client, desired, apply) for item in ITEMS])
    if verify and apply:
        outcome.items += _verify_tool_servers(client, desired)
    return outcome


def reconcile_stack(stack_dir: str, *, url: str | None = None, **kwargs) -> Outcome:
    """Sign in with the stack's admin credentials and reconcile from its files."""
    stack = StackDir.load(stack_dir)
    desired = desired_from_stack(stack)
    client = WebUIClient(url or stack.setting("webui", "url"))
    email = stack.env.get("WEBUI_ADMIN_EMAIL") or stack.setting("webui", "admin_email")
    sign_in_once(client, stack.path / SESSION_FILE, email, stack.secret("WEBUI_ADMIN_PASSWORD"))
    return reconcile(client, desired, **kwargs)


# The admin's session token, kept beside .env (same owner, mode 0600): Open WebUI counts
# every sign-in against its rate limit (client.SIGNIN_RATE_LIMIT) and every deploy
# reconciles, so reconcile signs in again only when the kept session has ended.
SESSION_FILE = ".webui-admin-session"


def sign_in_once(client: WebUIClient, session_file: Path, email: str, password: str) -> None:
    try:
        kept = session_file.read_text(encoding="utf-8").strip()
    except OSError:
        kept = ""
    if kept and client.resume(kept, email):
        return
    client.sign_in(email, password)
    try:  # a read-only stack directory (the docker runtime's host CLI) keeps nothing
        temporary = session_file.with_name(f"{session_file.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(client.token + "\n")
        temporary.replace(session_file)
    except OSError:
        pass
