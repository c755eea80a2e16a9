"""The smoke checks: what users and the deployment rely on, asked of the real servers."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass

import httpx
import jsonschema

from r1deploy import modelserver, tls
from r1deploy.smoke.config import SmokeConfig
from r1deploy.smoke.frontdoor import frontdoor_hidden_routes, frontdoor_redirect, frontdoor_tls
from r1deploy.smoke.runner import Check, CheckFailed, CheckSkipped, CheckWarning
from r1deploy.smoke.webui_chat import webui_ui_chat
from r1deploy.webui.client import SIGNIN_RATE_LIMIT, SIGNIN_RATE_LIMIT_WAIT_S, post_signin

# Short prompts: the checks test the wiring, not the model.
CHAT_PROMPT = "Say hello in one short sentence."
TOOL_PROMPT = "What is the weather in Paris right now?"
# The product guide's worked problem (--quality): f(x) = x^3 - 3x^2 + 2 on [-1, 3].
QUALITY_PROMPT = (
    "Find the maximum and the minimum values of f(x) = x^3 - 3x^2 + 2 on the interval "
    "[-1, 3]. Please reason step by step, and put the final answer within \\boxed{}, "
    "as \\boxed{max = ..., min = ...}."
)
MAX_TOKENS = 256  # the R1 model reasons first; enough for the tiny test models too


@dataclass
class Context:
    """Shared between checks: the config, HTTP sessions, and what earlier checks learnt."""

    config: SmokeConfig
    session: httpx.Client | None = None
    webui_token: str | None = None
    # The served model's /v1/models entry, read once: which server it is (owned_by) decides
    # how a few requests are worded (r1deploy/modelserver.py).
    model_entry: dict | None = None

    def __post_init__(self):
        if self.session is None:  # trusting the front door's CA where the stack has one
            self.session = httpx.Client(verify=tls.verify(self.config.verify))

    @property
    def timeout(self) -> float:
        return self.config.timeout_s

    def vllm_headers(self, key: str | None = "configured") -> dict:
        key = self.config.vllm_key if key == "configured" else key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def webui_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.webui_token}"}


def _served(ctx: Context) -> dict:
    """The model server's /v1/models entry for the configured model ({} when unreadable)."""
    if ctx.model_entry is None:
        try:
            response = ctx.session.get(
                f"{ctx.config.vllm_url}/v1/models", headers=ctx.vllm_headers(), timeout=ctx.timeout
            )
            entries = response.json().get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError):
            entries = []
        by_id = {e.get("id"): e for e in entries if isinstance(e, dict)}
        ctx.model_entry = by_id.get(ctx.config.model) or next(iter(by_id.values()), {})
    return ctx.model_entry


def _server_kind(ctx: Context) -> str:
    return modelserver.kind_of(_served(ctx))


def _need(value, what: str, fix: str):
    if not value:
        raise CheckSkipped(f"no {what} configured ({fix})")
    return value


def _json(response: httpx.Response, what: str):
    try:
        return response.json()
    except ValueError as exc:
        raise CheckFailed(
            f"{what} answered HTTP {response.status_code} with non-JSON: {response.text[:200]!r}"
        ) from exc


def _expect_ok(response: httpx.Response, what: str, fix: str = "") -> None:
    if response.status_code == 401:
        raise CheckFailed(
            f"{what}: the credentials were refused (HTTP 401)\n    fix: "
            + (fix or "check the key/password in the stack's .env")
        )
    if response.status_code >= 400:
        response.read()  # a streamed response holds no body until read
        detail = response.text[:300].strip()
        raise CheckFailed(
            f"{what}: HTTP {response.status_code}: {detail}" + (f"\n    fix: {fix}" if fix else "")
        )


def _excerpt(text: str | None, limit: int = 80) -> str:
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------- vLLM


def vllm_health(ctx: Context):
    url = _need(ctx.config.vllm_url, "vLLM URL", "settings.json vllm.url or --vllm")
    health = ctx.config.health_url or f"{url}/health"
    response = ctx.session.get(health, timeout=ctx.timeout)
    _expect_ok(response, "vLLM /health", "the engine is unhealthy: docker compose logs vllm")
    return f"{health} 200"


def vllm_models(ctx: Context):
    url, model = ctx.config.vllm_url, ctx.config.model
    response = ctx.session.get(f"{url}/v1/models", headers=ctx.vllm_headers(), timeout=ctx.timeout)
    _expect_ok(
        response,
        "vLLM /v1/models",
        "the API key in .env (VLLM_API_KEY) is not the one vLLM was started with",
    )
    served = {m.get("id"): m for m in _json(response, "vLLM /v1/models").get("data", [])}
    if model and model not in served:
        raise CheckFailed(
            f"vLLM serves {sorted(served)}, not the configured model name {model!r}\n"
            "    fix: --served-model-name in the vLLM command must equal settings.json "
            "model.served_name (re-render and restart the stack)",
            {"served": sorted(served)},
        )
    name = model or next(iter(served), None)
    if name is None:
        raise CheckFailed("vLLM /v1/models lists no model")
    ctx.model_entry = served[name]
    kind = modelserver.kind_of(served[name])
    max_len = modelserver.max_model_len_of(served[name])
    data = {"max_model_len": max_len, "server": kind}
    if kind == modelserver.LLAMACPP:
        data |= _llamacpp_props(ctx)
    wanted = ctx.config.max_model_len
    if wanted and max_len != wanted:
        fix = (
            "--ctx-size / --parallel (the context of one slot) must equal settings.json "
            "model.max_model_len"
            if kind == modelserver.LLAMACPP
            else "--max-model-len must equal settings.json model.max_model_len"
        )
        raise CheckFailed(
            f"{kind} serves {name!r} with max_model_len {max_len}, configured "
            f"{wanted}\n    fix: {fix}",
            data,
        )
    build = f" {data['build_info']}, {data['slots']} slot(s)" if "build_info" in data else ""
    return f"serves {name!r} ({kind}{build}), max_model_len {max_len}", data


def _llamacpp_props(ctx: Context) -> dict:
    """llama.cpp's /props: its build (b<number>-<commit>) and parallel slots."""
    try:
        props = ctx.session.get(
            f"{ctx.config.vllm_url}/props", headers=ctx.vllm_headers(), timeout=ctx.timeout
        ).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return {"build_info": props.get("build_info"), "slots": props.get("total_slots")}


def vllm_auth(ctx: Context):
    url = ctx.config.vllm_url
    response = ctx.session.get(f"{url}/v1/models", timeout=ctx.timeout)
    if not ctx.config.vllm_key:
        open_to_anyone = response.status_code < 400
        raise CheckWarning(
            "no API key configured (.env VLLM_API_KEY, or --vllm-key-file), so whether vLLM "
            "enforces one was not checked"
            + (
                f"; it answered HTTP {response.status_code} without a key: anyone who reaches "
                "it can use it"
                if open_to_anyone
                else ""
            )
            + "\n    fix: give the key (--stack-dir with its .env, or --vllm-key-file); "
            "--allow-warnings accepts this on purpose"
        )
    if response.status_code != 401:
        raise CheckFailed(
            f"vLLM answered HTTP {response.status_code} to a request without an "
            "API key, expected 401\n    fix: start vLLM with VLLM_API_KEY set "
            "(or --api-key), as the compose file does"
        )
    wrong = ctx.session.get(
        f"{url}/v1/models",
        headers=ctx.vllm_headers("wrong-" + secrets.token_hex(4)),
        timeout=ctx.timeout,
    )
    if wrong.status_code != 401:
        raise CheckFailed(
            f"vLLM answered HTTP {wrong.status_code} to a wrong API key, expected 401"
        )
    return "no key -> 401, wrong key -> 401"


def _chat_body(ctx: Context, prompt: str, **extra) -> dict:
    return {
        "model": ctx.config.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        **extra,
    }


def _reasoning_of(message: dict) -> str | None:
    # vLLM 0.32 says `reasoning`; older servers said `reasoning_content`.
    return message.get("reasoning") or message.get("reasoning_content")


def vllm_chat(ctx: Context):
    url = ctx.config.vllm_url
    response = ctx.session.post(
        f"{url}/v1/chat/completions",
        headers=ctx.vllm_headers(),
        json=_chat_body(ctx, CHAT_PROMPT),
        timeout=ctx.timeout,
    )
    _expect_ok(response, "vLLM chat completion")
    body = _json(response, "vLLM chat completion")
    message = body["choices"][0]["message"]
    content, reasoning, usage = message.get("content"), _reasoning_of(message), body.get("usage")
    data = {"content": content, "reasoning": reasoning, "usage": usage}
    if not content:
        raise CheckFailed(
            f"the answer has no content (finish_reason "
            f"{body['choices'][0].get('finish_reason')!r}, reasoning "
            f"{_excerpt(reasoning)!r})\n    fix: a reasoning that never ends "
            "fills max_tokens; check --reasoning-parser deepseek_r1",
            data,
        )
    if not reasoning:
        raise CheckFailed(
            "the reasoning is not split out (no `reasoning` nor "
            "`reasoning_content` field)\n    fix: start vLLM with "
            "--reasoning-parser deepseek_r1",
            data,
        )
    if not usage or not usage.get("completion_tokens"):
        raise CheckFailed(f"no usage in the answer: {usage!r}", data)
    return (
        f"{usage['completion_tokens']} tokens; reasoning {_excerpt(reasoning, 40)!r}; "
        f"answer {_excerpt(content, 40)!r}"
    ), data


def vllm_stream(ctx: Context):
    url = ctx.config.vllm_url
    start = time.perf_counter()
    ttft = None
    deltas, done, text = 0, False, []
    with ctx.session.stream(
        "POST",
        f"{url}/v1/chat/completions",
        headers=ctx.vllm_headers(),
        json=_chat_body(ctx, CHAT_PROMPT, stream=True),
        timeout=ctx.timeout,
    ) as response:
        _expect_ok(response, "vLLM streaming chat completion")
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            raise CheckFailed(
                "the stream is not server-sent events (content-type "
                f"{response.headers.get('content-type')!r})"
            )
        for line in response.iter_lines():
            if not line or not line.startswith("data:"):
                continue
            payload = line[len("data:") :].strip()
            if payload == "[DONE]":
                done = True
                break
            chunk = json.loads(payload)
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                # One delta can carry the end of the reasoning and the start of the answer.
                piece = (_reasoning_of(delta) or "") + (delta.get("content") or "")
                if piece:
                    deltas += 1
                    text.append(piece)
                    if ttft is None:
                        ttft = time.perf_counter() - start
    data = {"deltas": deltas, "ttft_s": ttft and round(ttft, 4), "text": "".join(text)}
    if not deltas:
        raise CheckFailed("the stream delivered no content delta", data)
    if not done:
        raise CheckFailed(f"the stream ended without `data: [DONE]` after {deltas} deltas", data)
    return f"{deltas} deltas, [DONE]; time to first token {ttft * 1000:.0f} ms", data


def _pick_tool(ctx: Context) -> dict:
    tools = ctx.config.tools
    if not tools:
        raise CheckSkipped("no tools configured (tools.openai.json / tools.json / --tools)")
    if ctx.config.tool_name:
        for tool in tools:
            if tool["function"]["name"] == ctx.config.tool_name:
                return tool
        names = [t["function"]["name"] for t in tools]
        raise CheckFailed(f"--tool {ctx.config.tool_name!r} is not among the tools {names}")
    return tools[0]


def vllm_tool_call(ctx: Context):
    url = ctx.config.vllm_url
    tool = _pick_tool(ctx)
    name = tool["function"]["name"]
    body = _chat_body(
        ctx, TOOL_PROMPT, **modelserver.named_tool_choice(_server_kind(ctx), ctx.config.tools, name)
    )
    response = ctx.session.post(
        f"{url}/v1/chat/completions", headers=ctx.vllm_headers(), json=body, timeout=ctx.timeout
    )
    _expect_ok(
        response,
        "vLLM tool call",
        "vLLM needs --enable-auto-tool-choice --tool-call-parser hermes and the R1 "
        "tools chat template (--chat-template)",
    )
    message = _json(response, "vLLM tool call")["choices"][0]["message"]
    calls = message.get("tool_calls") or []
    if not calls:
        content = _excerpt(message.get("content"))
        raise CheckFailed(
            f"no tool_calls in the answer (content {content!r})"
            "\n    fix: start vLLM with --enable-auto-tool-choice "
            "--tool-call-parser hermes",
            {"message": message},
        )
    call = calls[0]["function"]
    if call.get("name") != name:
        raise CheckFailed(f"asked for tool {name!r}, got {call.get('name')!r}")
    try:
        arguments = json.loads(call.get("arguments") or "")
    except ValueError as exc:
        raise CheckFailed(
            f"the arguments of {name} are not JSON: {call.get('arguments')!r}"
        ) from exc
    try:
        jsonschema.validate(arguments, tool["function"]["parameters"])
    except jsonschema.ValidationError as exc:
        pointer = "/" + "/".join(str(p) for p in exc.absolute_path)
        raise CheckFailed(
            f"the arguments of {name} do not validate against its params at {pointer}: "
            f"{exc.message}\n    fix: mark the tool strict in tools.json so vLLM holds the "
            "arguments to the schema",
            {"arguments": arguments},
        ) from exc
    return f"{name}({json.dumps(arguments)}) validates", {"tool": name, "arguments": arguments}


def vllm_metrics(ctx: Context):
    # Behind a front door /metrics is hidden on purpose (frontdoor.hidden_routes): read it
    # on the inside, with the model server's own key (llama.cpp asks for it on every route).
    url = ctx.config.inside_vllm_url or ctx.config.vllm_url
    key = ctx.config.inside_vllm_key if ctx.config.inside_vllm_url else "configured"
    response = ctx.session.get(f"{url}/metrics", headers=ctx.vllm_headers(key), timeout=ctx.timeout)
    kind = _server_kind(ctx)
    fix = (
        "start llama-server with --metrics (the role renders it)"
        if kind == modelserver.LLAMACPP
        else "vLLM serves /metrics on its API port: check settings.json vllm.url"
    )
    if response.status_code == 501 or response.status_code == 404:
        raise CheckFailed(f"{url}/metrics: HTTP {response.status_code}, no metrics\n    fix: {fix}")
    _expect_ok(response, "model server /metrics")
    families = modelserver.metric_families(response.text)
    prefix = modelserver.METRIC_PREFIXES.get(kind)
    ours = sorted(f for f in families if prefix and f.startswith(prefix))
    if prefix and not ours:
        raise CheckFailed(
            f"{url}/metrics has no {prefix}* metrics ({len(families)} others)\n    fix: {fix}",
            {"families": sorted(families)[:20]},
        )
    return (
        f"{len(ours or families)} {prefix or ''}* metric families",
        {"server": kind, "families": ours or sorted(families)},
    )


# ---------------------------------------------------------------- Open WebUI


def webui_health(ctx: Context):
    url = _need(ctx.config.webui_url, "Open WebUI URL", "settings.json webui.url or --webui")
    health = ctx.config.webui_health_url or f"{url}/health"
    response = ctx.session.get(health, timeout=ctx.timeout)
    _expect_ok(response, "Open WebUI /health", "docker compose logs open-webui")
    return f"{health} 200"


def webui_signin(ctx: Context):
    url, email = ctx.config.webui_url, ctx.config.admin_email
    _need(email, "admin email", ".env WEBUI_ADMIN_EMAIL or --admin-email")
    password = _need(
        ctx.config.admin_password,
        "admin password",
        ".env WEBUI_ADMIN_PASSWORD or --admin-password-file",
    )
    response = post_signin(ctx.session, url, email, password, timeout_s=ctx.timeout)
    if response.status_code == 429:
        raise CheckFailed(
            f"Open WebUI still refuses sign-ins after {SIGNIN_RATE_LIMIT_WAIT_S:g} s (HTTP 429)"
            f"\n    fix: it allows {SIGNIN_RATE_LIMIT}; wait a few minutes, then run again"
        )
    if response.status_code in (400, 401, 403):
        raise CheckFailed(
            f"the admin {email} cannot sign in (HTTP {response.status_code}: "
            f"{_excerpt(response.text, 120)})\n    fix: the admin is bootstrapped from "
            "WEBUI_ADMIN_EMAIL/WEBUI_ADMIN_PASSWORD only on a first start with an empty data "
            "volume; check .env against the account (or reset the volume)"
        )
    _expect_ok(response, "Open WebUI sign-in")
    body = _json(response, "Open WebUI sign-in")
    ctx.webui_token = body.get("token")
    if not ctx.webui_token:
        raise CheckFailed("the sign-in answer has no token")
    return f"{email} signed in as {body.get('role', '?')}"


def _backend_hint(ctx: Context) -> str:
    """What Open WebUI's OpenAI connection points at (admin API), for the failure message."""
    try:
        response = ctx.session.get(
            f"{ctx.config.webui_url}/openai/config",
            headers=ctx.webui_headers(),
            timeout=ctx.timeout,
        )
        urls = response.json().get("OPENAI_API_BASE_URLS")
    except (httpx.HTTPError, ValueError, AttributeError):
        return ""
    hint = f"; its OpenAI connection points at {urls}"
    if urls and all("api.openai.com" in u for u in urls):
        hint += (
            " (the default: OPENAI_API_BASE_URL was not set; note that OPENAI_BASE_URL, "
            "seen in many guides, is not read by Open WebUI)"
        )
    return hint


def webui_models(ctx: Context):
    url, model = ctx.config.webui_url, ctx.config.model
    response = ctx.session.get(
        f"{url}/api/models", headers=ctx.webui_headers(), timeout=ctx.timeout
    )
    _expect_ok(response, "Open WebUI /api/models")
    listed = [m.get("id") for m in _json(response, "Open WebUI /api/models").get("data", [])]
    if model not in listed:
        raise CheckFailed(
            f"Open WebUI does not list the model {model!r} (lists {listed}){_backend_hint(ctx)}"
            "\n    fix: set OPENAI_API_BASE_URL to the vLLM service (http://vllm:8000/v1 in "
            "compose) and OPENAI_API_KEY to the vLLM key; env only seeds a first start, so "
            "fix a running one in Admin > Settings > Connections",
            {"listed": listed},
        )
    return f"lists {model!r} (from {len(listed)} models)"


def webui_chat(ctx: Context):
    url = ctx.config.webui_url
    response = ctx.session.post(
        f"{url}/api/chat/completions",
        headers=ctx.webui_headers(),
        json=_chat_body(ctx, CHAT_PROMPT, stream=False),
        timeout=ctx.timeout,
    )
    if response.status_code >= 400:
        raise CheckFailed(
            f"Open WebUI chat completion: HTTP {response.status_code}: "
            f"{_excerpt(response.text, 200)}{_backend_hint(ctx)}"
        )
    body = _json(response, "Open WebUI chat completion")
    try:
        message = body["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise CheckFailed(
            f"Open WebUI chat completion has no choices: {_excerpt(str(body))}"
        ) from exc
    content = message.get("content")
    data = {"content": content, "reasoning": _reasoning_of(message)}
    if not content:
        raise CheckFailed("Open WebUI's chat completion came back without an answer", data)
    return f"answer {_excerpt(content, 50)!r}", data


def webui_signup_closed(ctx: Context):
    url = ctx.config.webui_url
    email = f"smoke-{secrets.token_hex(4)}@r1deploy.invalid"
    response = ctx.session.post(
        f"{url}/api/v1/auths/signup",
        timeout=ctx.timeout,
        json={"name": "smoke", "email": email, "password": secrets.token_urlsafe(16)},
    )
    if response.status_code < 400:
        user_id = (response.json() or {}).get("id") if response.content else None
        if user_id and ctx.webui_token:  # leave no stray account behind
            ctx.session.delete(
                f"{url}/api/v1/users/{user_id}", headers=ctx.webui_headers(), timeout=ctx.timeout
            )
        raise CheckFailed(
            f"a new account could sign up (HTTP {response.status_code}; removed again)\n"
            "    fix: ENABLE_SIGNUP=false only seeds a first start: close signup in Admin > "
            "Settings > General (or through /api/v1/auths/admin/config)"
        )
    return f"signup refused (HTTP {response.status_code})"


def gateway_health(ctx: Context):
    if not ctx.config.gateway_enabled:
        raise CheckSkipped("the tool gateway is disabled (settings.json gateway.enabled)")
    url = _need(ctx.config.gateway_url, "gateway URL", "settings.json gateway.url")
    response = ctx.session.get(f"{url}/health", timeout=ctx.timeout)
    _expect_ok(response, "tool gateway /health", "docker compose logs tools-gateway")
    return f"{url}/health 200"


def webui_tool_server(ctx: Context):
    if not ctx.config.gateway_enabled:
        raise CheckSkipped("the tool gateway is disabled (settings.json gateway.enabled)")
    url = ctx.config.webui_url
    response = ctx.session.get(
        f"{url}/api/v1/configs/tool_servers", headers=ctx.webui_headers(), timeout=ctx.timeout
    )
    _expect_ok(response, "Open WebUI tool server config")
    connections = _json(response, "tool server config").get("TOOL_SERVER_CONNECTIONS") or []
    if not connections:
        raise CheckFailed(
            "Open WebUI has no tool server connection\n    fix: deploy again "
            "(the role reconciles it through /api/v1/configs/tool_servers)"
        )
    verified = []
    for connection in connections:
        verify = ctx.session.post(
            f"{url}/api/v1/configs/tool_servers/verify",
            headers=ctx.webui_headers(),
            json=connection,
            timeout=ctx.timeout,
        )
        if verify.status_code >= 400:
            raise CheckFailed(
                f"Open WebUI cannot verify the tool server {connection.get('url')}"
                f": HTTP {verify.status_code}: {_excerpt(verify.text, 200)}\n"
                "    fix: check the gateway is up and its key matches "
                "TOOLS_GATEWAY_KEY"
            )
        verified.append(connection.get("url"))
    return f"verified {verified}"


# Gateway error codes that mean the upstream API, not the stack, is unreachable.
UPSTREAM_UNREACHABLE = frozenset({"upstream-unreachable", "upstream-timeout"})


def _upstream_error(body: object) -> str | None:
    """The gateway's error code in a tool result, if the result is its JSON error body."""
    try:
        parsed = json.loads(body) if isinstance(body, str) else body
    except ValueError:
        return None
    return parsed.get("error") if isinstance(parsed, dict) else None


def agent_round_trip(ctx: Context):
    """The agent loop end to end: a named tool call, run through the gateway, fed back."""
    if not ctx.config.gateway_enabled:
        raise CheckSkipped("the tool gateway is disabled (settings.json gateway.enabled)")
    from r1deploy.agent.loop import AgentError, Endpoint, run_agent

    tool = _pick_tool(ctx)
    name = tool["function"]["name"]
    choice = modelserver.named_tool_choice(_server_kind(ctx), ctx.config.tools, name)
    if isinstance(choice["tool_choice"], dict):
        choice["tool_choice"] = name  # the agent words a named choice itself
    try:
        result = run_agent(
            TOOL_PROMPT,
            llm=Endpoint(
                f"{ctx.config.vllm_url}/v1", ctx.config.vllm_key or "", verify=ctx.config.verify
            ),
            model=ctx.config.model,
            gateway=Endpoint(ctx.config.gateway_url, ctx.config.gateway_key or ""),
            tools=choice["tools"],
            tool_choice=choice["tool_choice"],
            max_rounds=2,
            timeout_s=ctx.timeout,
        )
    except AgentError as exc:
        raise CheckFailed(str(exc)) from exc
    data = result.to_dict()
    if not result.tool_runs:
        raise CheckFailed(f"the model called no tool under tool_choice {name!r}", data)
    run = result.tool_runs[0]
    if _upstream_error(run.result) in UPSTREAM_UNREACHABLE:
        # Model, gateway and loop did their part; the third-party API is out of reach
        # (an offline host): that proves nothing either way about this stack.
        raise CheckSkipped(
            f"{run.name}({run.arguments}) reached the gateway, whose upstream is out of reach: "
            f"{_excerpt(run.result, 160)}; point the plugin's base_url_env at a reachable "
            "mirror to prove the whole round trip"
        )
    if not 200 <= run.status < 300:
        raise CheckFailed(
            f"the gateway answered HTTP {run.status} for {run.name}({run.arguments}): "
            f"{_excerpt(run.result, 200)}\n    fix: 502/504 mean the upstream API is not "
            "reachable from the gateway (network, or point the plugin's base_url_env at a "
            "mirror); 400 means the arguments broke params (mark the tool strict)",
            data,
        )
    if not result.answer.strip():
        raise CheckFailed("no final answer after the tool result was fed back", data)
    return (f"{run.name} -> HTTP {run.status}, answer {_excerpt(result.answer)!r}", data)


# ---------------------------------------------------------------- quality

_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")


def parse_extrema(text: str) -> tuple[float | None, float | None]:
    """Maximum and minimum from an answer such as ``\\boxed{max = 2, min = -2}``."""
    found: dict[str, float] = {}
    boxed = " ".join(_BOXED.findall(text)) or text
    for kind, value in re.findall(r"(max|min)\w*[^\d\-]{0,25}?(-?\s*\d+(?:\.\d+)?)", boxed, re.I):
        found.setdefault(kind.lower(), float(value.replace(" ", "")))
    if len(found) < 2:
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", " ".join(_BOXED.findall(text)))]
        if len(numbers) == 2:
            found = {"max": max(numbers), "min": min(numbers)}
    return found.get("max"), found.get("min")


def quality(ctx: Context):
    if not ctx.config.quality:
        raise CheckSkipped("off (--quality asks a real model the product guide's problem)")
    url = ctx.config.vllm_url
    body = _chat_body(ctx, QUALITY_PROMPT)
    body["max_tokens"] = 3072
    response = ctx.session.post(
        f"{url}/v1/chat/completions",
        headers=ctx.vllm_headers(),
        json=body,
        timeout=max(ctx.timeout, 600),
    )
    _expect_ok(response, "quality question")
    content = _json(response, "quality question")["choices"][0]["message"].get("content") or ""
    maximum, minimum = parse_extrema(content)
    data = {"max": maximum, "min": minimum, "answer": content[-400:]}
    if (maximum, minimum) != (2, -2):
        raise CheckFailed(
            f"expected maximum 2 and minimum -2, the model said max {maximum}, "
            f"min {minimum}: {_excerpt(content[-200:], 200)!r}",
            data,
        )
    return "maximum 2, minimum -2", data


CHECKS = [
    Check("vllm.health", "vLLM answers /health", vllm_health),
    Check(
        "vllm.models",
        "serves the configured model name and max_model_len",
        vllm_models,
        ("vllm.health",),
    ),
    Check("vllm.auth", "the API key is enforced", vllm_auth, ("vllm.health",)),
    Check(
        "vllm.chat",
        "chat completion with content, usage and reasoning split out",
        vllm_chat,
        ("vllm.health",),
    ),
    Check(
        "vllm.stream",
        "streaming delivers deltas and [DONE]; time to first token",
        vllm_stream,
        ("vllm.health",),
    ),
    Check(
        "vllm.tool_call",
        "named tool choice yields arguments valid against params",
        vllm_tool_call,
        ("vllm.health",),
    ),
    Check(
        "vllm.metrics",
        "the Prometheus /metrics endpoint serves the engine's metrics",
        vllm_metrics,
        ("vllm.health",),
    ),
    Check("webui.health", "Open WebUI answers /health", webui_health),
    Check("webui.signin", "the bootstrapped admin signs in", webui_signin, ("webui.health",)),
    Check(
        "webui.models",
        "Open WebUI lists the vLLM model (backend wiring)",
        webui_models,
        ("webui.signin",),
    ),
    Check("webui.chat", "chat completion through Open WebUI", webui_chat, ("webui.signin",)),
    Check(
        "webui.ui_chat",
        "a chat sent as the browser sends it is answered, in budget",
        webui_ui_chat,
        ("webui.models",),
    ),
    Check(
        "webui.signup_closed", "a second signup is refused", webui_signup_closed, ("webui.health",)
    ),
    Check(
        "frontdoor.tls",
        "Open WebUI through the front door: trusted certificate, HSTS",
        frontdoor_tls,
    ),
    Check("frontdoor.redirect", "plain HTTP is sent to HTTPS", frontdoor_redirect),
    Check(
        "frontdoor.hidden_routes",
        "the model server's keyless routes are not reachable",
        frontdoor_hidden_routes,
    ),
    Check("gateway.health", "the tool gateway answers /health", gateway_health),
    Check(
        "webui.tool_server",
        "Open WebUI verifies the tool gateway connection",
        webui_tool_server,
        ("webui.signin",),
    ),
    Check(
        "agent.round_trip",
        "the agent loop: tool call through the gateway, then an answer",
        agent_round_trip,
        ("vllm.tool_call", "gateway.health"),
    ),
    Check(
        "quality", "the product guide's worked problem (real model only)", quality, ("vllm.health",)
    ),
]
