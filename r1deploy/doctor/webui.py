"""webui.*: Open WebUI as its admin API shows it (the served model's entry, signup, the
configuration it keeps in its database), read after one admin sign-in per run."""

from __future__ import annotations

import dataclasses

import httpx

from r1deploy import modelfacts
from r1deploy.doctor.core import SKIP, DoctorContext, Verdict, failed, passed, skipped, warned
from r1deploy.stackdir import StackDirError
from r1deploy.webui.client import SIGNIN_RATE_LIMIT, WebUIClient, WebUIError, post_signin
from r1deploy.webui.reconcile import desired_from_stack, reconcile

# Open WebUI's built-in tools add ~8,300 tokens to every chat sent from the UI
# (docs/context-budget.md): they fit only a context above this.
BUILTIN_TOOLS_MIN_CONTEXT = 8192
# ctx.facts keys: the admin session (or why there is none) and the model's entry, shared by
# the webui checks of one run.
ADMIN_FACT, ENTRY_FACT = "webui.admin", "webui.model_entry"
# How far an entry's sampling may stray from model_facts.json's recommendation: DeepSeek's
# model card asks for a temperature of 0.5-0.7 (0.6 recommended) and top_p 0.95 "to prevent
# endless repetitions or incoherent outputs".
SAMPLING_TOLERANCE = {"temperature": 0.1, "top_p": 0.05}
# reconcile's items that Open WebUI seeds from its environment on the first start only, and
# the variables each comes from (compose.yaml's or native/env/open-webui.env's).
ENV_ITEMS = {
    "openai_connections": "OPENAI_API_BASE_URL(S)/OPENAI_API_KEY(S)",
    "tool_servers": "TOOL_SERVER_CONNECTIONS",
    "signup": "ENABLE_SIGNUP",
    "default_model": "DEFAULT_MODELS",
}


def _reconcile_fix(ctx: DoctorContext) -> str:
    return f"r1deploy webui reconcile --stack-dir {ctx.stack.path} (make deploy runs it)"


def _api_broke(what: str, exc: Exception) -> Verdict:
    return failed(
        f"Open WebUI's admin API did not give {what}: {exc}",
        "Open WebUI answers, but not as the version this stack pins does",
        "check Open WebUI's log (make logs SERVICE=open-webui) and its image in "
        "settings.json images.webui",
    )


def _sign_in(ctx: DoctorContext) -> WebUIClient | Verdict:
    webui = ctx.settings.get("webui") or {}
    url = webui.get("url")
    if not url:
        return skipped("settings.json has no webui.url")
    if not ctx.probe(f"{url.rstrip('/')}/health").up:
        return skipped("Open WebUI does not answer (services.reachable says why)")
    email = ctx.stack.env.get("WEBUI_ADMIN_EMAIL") or webui.get("admin_email")
    password = ctx.stack.env.get("WEBUI_ADMIN_PASSWORD")
    env_file = ctx.stack.path / ".env"
    if not (email and password):
        return warned(
            f"{env_file} has no WEBUI_ADMIN_EMAIL/WEBUI_ADMIN_PASSWORD",
            "the doctor cannot sign in to read Open WebUI's configuration (the .env is not "
            "readable by this user, or was not rendered)",
            "run the doctor as root on the host (the .env is 0600), or render the "
            "stack again: make deploy",
        )
    client = WebUIClient(url, timeout_s=ctx.timeout_s)
    try:
        response = post_signin(
            client.session, url, email, password, timeout_s=ctx.timeout_s, wait_s=0
        )
    except httpx.HTTPError as exc:
        return skipped(f"Open WebUI did not answer the sign-in: {type(exc).__name__}")
    if response.status_code == 429:
        return warned(
            f"Open WebUI refuses sign-ins for now (HTTP 429, {SIGNIN_RATE_LIMIT})",
            "too many sign-ins lately (deploys, smokes, reconciles), so Open WebUI's "
            "configuration was not read",
            "wait a few minutes, then run the doctor again",
        )
    if response.status_code in (400, 401, 403):
        return failed(
            f"the admin {email} does not sign in with WEBUI_ADMIN_PASSWORD of "
            f"{env_file} (HTTP {response.status_code})",
            "the admin password no longer signs in: it was changed in the UI, or the "
            "account was made from another .env; reconcile, smoke and upgrade fail "
            "until it does",
            "make rotate-secrets SECRET=webui_admin_password (if the password was "
            "changed in the UI, put the one that works in .env WEBUI_ADMIN_PASSWORD "
            "first, so the rotation can sign in)",
            email=email,
        )
    try:
        if response.is_error:
            raise WebUIError(f"sign-in: HTTP {response.status_code}: {response.text[:200]}")
        client.token = response.json()["token"]
    except (WebUIError, KeyError, ValueError) as exc:
        return _api_broke("an admin session", exc)
    return client


def webui_admin(ctx: DoctorContext) -> WebUIClient | Verdict:
    """The signed-in admin client, or the Verdict that says why there is none.

    One sign-in per run (Open WebUI rate-limits them): the first webui check signs in and
    reports a sign-in problem; the later ones reuse the session, or SKIP pointing at it."""
    if ADMIN_FACT not in ctx.facts:
        ctx.facts[ADMIN_FACT] = _sign_in(ctx)
        return ctx.facts[ADMIN_FACT]
    kept = ctx.facts[ADMIN_FACT]
    if isinstance(kept, Verdict) and kept.status != SKIP:
        return skipped(f"no admin session: {kept.seen} (an earlier webui check says why)")
    return kept


def _model_entry(ctx: DoctorContext, client: WebUIClient) -> tuple[str, dict | None]:
    """The served model's id and its entry in Open WebUI (None: it has none); read once."""
    model_id = ctx.stack.setting("model", "served_name")
    if ENTRY_FACT not in ctx.facts:
        ctx.facts[ENTRY_FACT] = client.model_entry(model_id)
    return model_id, ctx.facts[ENTRY_FACT]


def _no_entry(ctx: DoctorContext, model_id: str) -> Verdict:
    return warned(
        f"Open WebUI has no entry for the model {model_id!r}",
        "the entry (capabilities, sampling, who may use it) was never written or "
        "was deleted: only admins can use the model, with Open WebUI's defaults "
        "(built-in tools on)",
        _reconcile_fix(ctx),
    )


def _entry_signed_in(ctx: DoctorContext) -> tuple[str, dict] | Verdict:
    """(the served model's id, its entry) as the admin reads it, or the Verdict that says why
    a check cannot read it (no admin session, the API broke, no entry)."""
    client = webui_admin(ctx)
    if isinstance(client, Verdict):
        return client
    try:
        model_id, entry = _model_entry(ctx, client)
    except WebUIError as exc:
        return _api_broke("the model's entry", exc)
    if entry is None:
        return _no_entry(ctx, model_id)
    return model_id, entry


def webui_builtin_tools(ctx: DoctorContext) -> Verdict:
    found = _entry_signed_in(ctx)
    if isinstance(found, Verdict):
        return found
    model_id, entry = found
    webui = ctx.settings.get("webui") or {}
    context = int((ctx.settings.get("model") or {}).get("max_model_len") or 0)
    capabilities = (entry.get("meta") or {}).get("capabilities") or {}
    builtin = bool(capabilities.get("builtin_tools", True))  # Open WebUI's default: on
    data = {"model": model_id, "builtin_tools": builtin, "max_model_len": context}
    wanted = bool(((webui.get("model") or {}).get("capabilities") or {}).get("builtin_tools"))
    seen = f"{model_id}: built-in tools {'on' if builtin else 'off'}, context {context} tokens"
    if builtin and context <= BUILTIN_TOOLS_MIN_CONTEXT:
        where = (
            "settings.json asks for them too: set r1_stack_webui_builtin_tools: false, "
            "then make deploy"
            if wanted
            else f"r1deploy webui reconcile --stack-dir {ctx.stack.path} puts back the stack's "
            "r1_stack_webui_builtin_tools: false (someone switched them on in the UI)"
        )
        return failed(
            seen,
            f"Open WebUI's built-in tools add ~8,300 tokens to every chat from "
            f"the UI: with a context of {context} a question with them does not fit "
            "(the model answers with an error, or nothing)",
            f"{where}; or raise r1_stack_max_model_len to 16384 or more",
            **data,
        )
    return passed(seen, **data)


def webui_function_calling(ctx: DoctorContext) -> Verdict:
    """Open WebUI 0.12 sends a chat's tools to the model unless the model's (or the chat's)
    params say function_calling 'legacy': then a prompt to a task model picks the tools, and
    vLLM's tool parser never sees a call (open_webui/utils/middleware.py)."""
    found = _entry_signed_in(ctx)
    if isinstance(found, Verdict):
        return found
    model_id, entry = found
    mode = (entry.get("params") or {}).get("function_calling")
    data = {"model": model_id, "function_calling": mode}
    seen = f"{model_id}: function calling {mode or 'not set (native: tools go to the model)'}"
    if mode == "legacy":
        return failed(
            seen,
            "Open WebUI's legacy function calling sends no tools to vLLM: it asks a task "
            "model in a prompt instead, so the model's own tool calls never trigger",
            f"in Admin > Settings > Models > {model_id} > Advanced Params set Function "
            "Calling to Native (or Default); a user's chat settings can set it too "
            "(Chat Controls > Advanced Params)",
            **data,
        )
    return passed(seen, **data)


def _desired(ctx: DoctorContext):
    """reconcile's desired state of the stack, without the model's entry (the other webui
    checks read that); a StackDirError when the stack's files do not give it."""
    return dataclasses.replace(desired_from_stack(ctx.stack), model=None)


def _desired_and_admin(ctx: DoctorContext):
    """(reconcile's desired state, the signed-in admin client), or the Verdict that says why
    a check cannot compare them."""
    try:
        desired = _desired(ctx)
    except StackDirError as exc:
        return skipped(f"the stack's Open WebUI environment is not readable here: {exc}")
    client = webui_admin(ctx)
    return client if isinstance(client, Verdict) else (desired, client)


def webui_signup(ctx: DoctorContext) -> Verdict:
    both = _desired_and_admin(ctx)
    if isinstance(both, Verdict):
        return both
    desired, client = both
    try:
        config = client.admin_config()
    except WebUIError as exc:
        return _api_broke("its auth configuration", exc)
    is_open = config.get("ENABLE_SIGNUP")
    data = {"enable_signup": is_open, "stack_enable_signup": desired.enable_signup}
    seen = (
        f"Open WebUI's signup is {'open' if is_open else 'closed'}; the stack's ENABLE_SIGNUP "
        f"says {'open' if desired.enable_signup else 'closed'}"
    )
    if is_open and not desired.enable_signup:
        return failed(
            seen,
            "anyone who reaches Open WebUI can make an account and use the model (and the "
            "tools): signup was opened in Admin > Settings, or the database was seeded "
            "before ENABLE_SIGNUP=false, which Open WebUI reads on its first start only",
            f"{_reconcile_fix(ctx)} closes it again; then look for unknown accounts in "
            "Admin > Users",
            **data,
        )
    return passed(seen, **data)


def webui_env_drift(ctx: DoctorContext) -> Verdict:
    both = _desired_and_admin(ctx)
    if isinstance(both, Verdict):
        return both
    desired, client = both
    try:  # reconcile's dry run: what it would change, read only
        outcome = reconcile(client, desired, apply=False, verify=False)
    except WebUIError as exc:
        return _api_broke("its configuration", exc)
    items = [i for i in outcome.items if i.item in ENV_ITEMS]
    differing = [i for i in items if i.changed]
    data = {"differing": [ENV_ITEMS[i.item] for i in differing]}
    if not differing:
        return passed(
            "Open WebUI's " + ", ".join(ENV_ITEMS[i.item] for i in items) + " are as the "
            "stack's environment says",
            **data,
        )
    return warned(
        "differ from the stack's environment: "
        + "; ".join(f"{ENV_ITEMS[i.item]} (the stack: {i.detail})" for i in differing),
        "Open WebUI keeps its first-start configuration in its database; an env change "
        "does not reach it (or it was changed in Admin > Settings since)",
        _reconcile_fix(ctx),
        **data,
    )


def _recommended_sampling(ctx: DoctorContext) -> tuple[str, dict] | None:
    model = ctx.settings.get("model") or {}
    for name in (model.get("id"), model.get("path")):
        found = modelfacts.find(str(name)) if name else None
        if found:
            return found[0], found[1].get("sampling") or {}
    return None


def webui_sampling(ctx: DoctorContext) -> Verdict:
    recommended = _recommended_sampling(ctx)
    if recommended is None:
        return skipped("r1deploy/model_facts.json has no recommended sampling for this model")
    facts_id, sampling = recommended
    found = _entry_signed_in(ctx)
    if isinstance(found, Verdict):
        return found
    model_id, entry = found
    params = entry.get("params") or {}
    seen, off, data = [], [], {"model": model_id}
    for name, tolerance in SAMPLING_TOLERANCE.items():
        if name not in sampling:
            continue
        low, high = sampling[name] - tolerance, min(sampling[name] + tolerance, 1.0)
        value = params.get(name)
        data[name] = value
        if value is None:  # not sent: vLLM takes the model's generation_config.json
            seen.append(f"{name} not set (the model's default {sampling[name]:g})")
        elif not low <= float(value) <= high:
            off.append(f"{name} {value:g} is outside {low:g}-{high:g}")
        else:
            seen.append(f"{name} {value:g}")
    if off:
        return warned(
            f"{model_id}: " + "; ".join(off),
            f"{facts_id} repeats itself without end or loses its thread outside its "
            "recommended sampling (r1deploy/model_facts.json, from its model card): answers "
            "loop or stall until the context is full",
            f"{_reconcile_fix(ctx)} puts back the stack's sampling (settings.json "
            "webui.model.params); a user's own chat settings can override it too",
            **data,
        )
    return passed(f"{model_id}: " + ", ".join(seen), **data)
