"""A chat sent the way Open WebUI's own page sends it, not the way an API client does.

The browser's request differs from a plain ``/api/chat/completions`` call in what makes Open
WebUI add to the prompt: a socket ``session_id`` (chats from the UI get the model's built-in
tools, unless its entry turns them off), a new chat (``parent_id: null`` and the user
message: Open WebUI stores the chat and loads the history from its database), the model
entry's params, and the tools a person switches on. The answer does not come back in the
response: Open WebUI runs the chat in the background and writes the result, or the
upstream's error, into the stored chat, where this check reads it.

A new Open WebUI release that adds to every UI prompt (built-in tools were one such default)
shows here twice: as the upstream's context-length error, and before that, as a prompt
larger than the budget the role sized the context with (settings.json
``model.prompt_budget``), read from the token usage Open WebUI stores with the answer.
"""

from __future__ import annotations

import secrets
import time
import uuid

from r1deploy.smoke.runner import CheckFailed

# A one-line question: what the prompt holds beyond it is what Open WebUI adds.
UI_PROMPT = "Say hello in one short sentence."
POLL_EVERY_S = 0.5


def _model_item(ctx, url: str) -> dict:
    response = ctx.session.get(
        f"{url}/api/models", headers=ctx.webui_headers(), timeout=ctx.timeout
    )
    response.raise_for_status()
    for item in response.json().get("data", []):
        if item.get("id") == ctx.config.model:
            return item
    raise CheckFailed(f"Open WebUI does not list {ctx.config.model!r} for the admin")


def ui_request(ctx, model_item: dict, tool_ids: list[str]) -> tuple[dict, str]:
    """The body Open WebUI 0.12.4's chat page posts for a new chat's first message, and the
    assistant message's id (where the answer is stored)."""
    model = ctx.config.model
    assistant_id, user_id = str(uuid.uuid4()), str(uuid.uuid4())
    capabilities = ((model_item.get("info") or {}).get("meta") or {}).get("capabilities") or {}
    body = {
        "stream": True,
        "model": model,
        # The page sends no sampling of its own: Open WebUI applies the model entry's params.
        "params": {},
        "tool_ids": tool_ids,
        "tool_servers": [],
        "features": {
            "voice": False,
            "image_generation": False,
            "code_interpreter": False,
            "web_search": False,
            "memory": bool(capabilities.get("memory", True)),
        },
        "variables": {},
        "model_item": model_item,
        # A socket.io session id, as the page has one: what marks a chat as sent from the UI.
        "session_id": secrets.token_urlsafe(15),
        "id": assistant_id,
        "message_ids": [{"model_id": model, "message_id": assistant_id, "modelIdx": 0}],
        "parent_id": None,
        "user_message": {
            "id": user_id,
            "parentId": None,
            "childrenIds": [assistant_id],
            "role": "user",
            "content": UI_PROMPT,
            "timestamp": int(time.time()),
            "models": [model],
        },
        # Title, tags and follow-ups would be more chats in the background: not the path
        # that answers a person.
        "background_tasks": {},
    }
    return body, assistant_id


def _wait_for_answer(ctx, url: str, chat_id: str, message_id: str) -> dict:
    deadline = time.monotonic() + ctx.timeout
    message: dict = {}
    while time.monotonic() < deadline:
        response = ctx.session.get(
            f"{url}/api/v1/chats/{chat_id}", headers=ctx.webui_headers(), timeout=ctx.timeout
        )
        response.raise_for_status()
        messages = ((response.json().get("chat") or {}).get("history") or {}).get("messages")
        message = (messages or {}).get(message_id) or {}
        if message.get("done") or message.get("error"):
            return message
        time.sleep(POLL_EVERY_S)
    raise CheckFailed(
        f"Open WebUI stored no finished answer within {ctx.timeout:g} s "
        f"(chat {chat_id}; last seen: {str(message)[:200]})\n    fix: look at "
        "Open WebUI's log for the chat task, and at vLLM's"
    )


def _error_text(error) -> str:
    if isinstance(error, dict):
        error = error.get("content") or error.get("detail") or error
    return str(error)


def _cause_and_fix(error: str, capabilities: dict) -> str:
    if "maximum context length" in error:
        builtin = capabilities.get("builtin_tools", True)
        return (
            "the prompt Open WebUI built does not fit the model's context"
            + (
                " (its built-in tools are on for this model: ~8,300 tokens of tool "
                "definitions in every chat)"
                if builtin
                else ""
            )
            + "\n    fix: deploy again (make deploy) so reconcile writes the model's entry "
            "(r1_stack_webui_builtin_tools: false), or raise r1_stack_max_model_len"
        )
    if "Model not found" in error:
        return (
            "Open WebUI has no entry for the model that lets this user use it"
            "\n    fix: deploy again (make deploy); reconcile writes the entry"
        )
    return "\n    fix: read Open WebUI's and vLLM's logs around this chat"


def webui_ui_chat(ctx):
    """A first message in a new chat, sent as the chat page sends it; the stored answer."""
    url = ctx.config.webui_url
    model_item = _model_item(ctx, url)
    capabilities = ((model_item.get("info") or {}).get("meta") or {}).get("capabilities") or {}
    tool_ids = list(ctx.config.webui_tool_ids) if ctx.config.gateway_enabled else []
    body, message_id = ui_request(ctx, model_item, tool_ids)
    response = ctx.session.post(
        f"{url}/api/chat/completions", headers=ctx.webui_headers(), json=body, timeout=ctx.timeout
    )
    if response.status_code >= 400:
        error = response.text[:300]
        raise CheckFailed(
            f"Open WebUI refused the chat (HTTP {response.status_code}): {error}; "
            + _cause_and_fix(error, capabilities)
        )
    chat_id = response.json().get("chat_id")
    if not chat_id:
        raise CheckFailed(f"Open WebUI started no chat: {response.text[:200]}")
    try:
        message = _wait_for_answer(ctx, url, chat_id, message_id)
    finally:  # leave no smoke chat in the admin's sidebar
        ctx.session.delete(
            f"{url}/api/v1/chats/{chat_id}", headers=ctx.webui_headers(), timeout=ctx.timeout
        )
    usage = message.get("usage") or {}
    data = {
        "content": message.get("content"),
        "usage": usage,
        "tool_ids": tool_ids,
        "builtin_tools": capabilities.get("builtin_tools", True),
    }
    if message.get("error"):
        error = _error_text(message["error"])
        raise CheckFailed(
            f"a chat sent as from the browser came back with an error: {error}; "
            + _cause_and_fix(error, capabilities),
            data,
        )
    if not (message.get("content") or "").strip():
        raise CheckFailed("a chat sent as from the browser came back without an answer", data)
    prompt = usage.get("prompt_tokens")
    budget = ctx.config.prompt_budget
    if prompt and budget and prompt > budget:
        raise CheckFailed(
            f"a one-line question sent from the browser took {prompt} prompt tokens, more than "
            f"the {budget} the context was sized for (settings.json model.prompt_budget): "
            "Open WebUI adds something to every prompt that the budget does not know (a new "
            "default, e.g. built-in tools, a system prompt, memories)\n    fix: find the "
            "switch in Open WebUI's model entry or admin settings, turn it off in reconcile, "
            "or raise r1_stack_max_model_len",
            data,
        )
    tools = f" with tools {tool_ids}" if tool_ids else ""
    size = ""
    if prompt:
        size = f", prompt {prompt} tokens" + (f" of {budget} budgeted" if budget else "")
    return f"answered{tools}{size}", data
