"""webui.builtin_tools: the served model's entry in Open WebUI, read through its admin API."""

from __future__ import annotations

import httpx

from r1deploy.doctor.core import DoctorContext, Verdict, failed, passed, skipped, warned
from r1deploy.webui.client import SIGNIN_RATE_LIMIT, WebUIClient, WebUIError, post_signin

# Open WebUI's built-in tools add ~8,300 tokens to every chat sent from the UI
# (docs/context-budget.md): they fit only a context above this.
BUILTIN_TOOLS_MIN_CONTEXT = 8192


def webui_builtin_tools(ctx: DoctorContext) -> Verdict:
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
            "the doctor cannot sign in to read the model's entry (the .env is not "
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
            "too many sign-ins lately (deploys, smokes, reconciles), so the model's "
            "entry was not read",
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
        model_id = ctx.stack.setting("model", "served_name")
        entry = client.model_entry(model_id)
    except (WebUIError, KeyError, ValueError) as exc:
        return failed(
            f"Open WebUI's admin API did not give the model's entry: {exc}",
            "Open WebUI answers, but not as the version this stack pins does",
            "check Open WebUI's log (make logs SERVICE=open-webui) and its image in "
            "settings.json images.webui",
        )
    context = int((ctx.settings.get("model") or {}).get("max_model_len") or 0)
    if entry is None:
        return warned(
            f"Open WebUI has no entry for the model {model_id!r}",
            "the entry (capabilities, sampling, who may use it) was never written or "
            "was deleted: only admins can use the model, with Open WebUI's defaults "
            "(built-in tools on)",
            f"r1deploy webui reconcile --stack-dir {ctx.stack.path} (make deploy runs it)",
        )
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
