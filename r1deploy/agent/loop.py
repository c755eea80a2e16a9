"""Ask the model with the exported tools; run its tool calls through the gateway; repeat.

Each round sends the conversation with the tools; an answer with ``tool_calls`` has each
call executed by the tool gateway and its result appended as a ``tool`` message, and the
model is asked again. The last allowed round sends ``tool_choice: "none"`` so the loop
always ends with an answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from r1deploy import tls

DEFAULT_MAX_ROUNDS = 4


class AgentError(RuntimeError):
    """The model server or the gateway could not be used (says which and why)."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    key: str = ""
    # How to trust an https URL's certificate: a CA file (the front door's), or True.
    verify: str | bool = True

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


@dataclass
class ToolRun:
    round: int
    name: str
    arguments: str
    status: int
    result: str


@dataclass
class Round:
    reasoning: str
    content: str
    tool_calls: list[dict]


@dataclass
class AgentResult:
    answer: str
    rounds: list[Round] = field(default_factory=list)
    tool_runs: list[ToolRun] = field(default_factory=list)
    finish_reason: str = ""

    @property
    def reasoning(self) -> list[str]:
        return [r.reasoning for r in self.rounds if r.reasoning]

    def to_dict(self) -> dict:
        return {
            "answer": self.answer,
            "finish_reason": self.finish_reason,
            "rounds": [vars(r) for r in self.rounds],
            "tool_runs": [vars(t) for t in self.tool_runs],
        }


def tool_choice_value(choice: str) -> str | dict:
    """The request's tool_choice for auto/required/none or a tool name."""
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _post(session: httpx.Client, url: str, what: str, **kwargs) -> httpx.Response:
    try:
        return session.post(url, **kwargs)
    except httpx.HTTPError as exc:
        raise AgentError(f"cannot reach {what} at {url}: {exc}") from None


def ask_model(
    session: httpx.Client,
    llm: Endpoint,
    model: str,
    messages: list[dict],
    tools: list[dict],
    tool_choice: str | dict,
    timeout_s: float,
) -> dict:
    body = {"model": model, "messages": messages}
    if tools:
        body |= {"tools": tools, "tool_choice": tool_choice}
    url = llm.url.rstrip("/") + "/chat/completions"
    response = _post(
        session, url, "the model server", json=body, headers=llm.headers(), timeout=timeout_s
    )
    if response.status_code != 200:
        raise AgentError(
            f"the model server answered HTTP {response.status_code} at {url}: {response.text[:500]}"
        )
    return response.json()["choices"][0]


def run_tool(
    session: httpx.Client, gateway: Endpoint, name: str, arguments: str, timeout_s: float
) -> tuple[int, str]:
    """(HTTP status, text for the model). Errors are returned, not raised: the model may
    recover from a bad argument, and the conversation shows what happened."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError as exc:
        return 400, json.dumps({"error": f"arguments are not JSON: {exc}"})
    url = f"{gateway.url.rstrip('/')}/tools/{name}"
    response = _post(
        session, url, "the tool gateway", json=parsed, headers=gateway.headers(), timeout=timeout_s
    )
    if response.status_code == 401:
        raise AgentError(f"the tool gateway refused the key at {url}: check TOOLS_GATEWAY_KEY")
    return response.status_code, response.text


def run_agent(
    question: str,
    *,
    llm: Endpoint,
    model: str,
    gateway: Endpoint,
    tools: list[dict],
    tool_choice: str = "auto",
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    timeout_s: float = 120.0,
    on_event: Callable[[str, object], None] | None = None,
) -> AgentResult:
    """The loop. ``tool_choice`` holds for the first round; later rounds use ``auto``
    (a forced tool on every round would never let the model answer)."""
    if max_rounds < 1:
        raise ValueError("max_rounds must be at least 1")
    names = {tool["function"]["name"] for tool in tools}
    if tool_choice not in ("auto", "required", "none") and tool_choice not in names:
        listed = ", ".join(sorted(names))
        raise ValueError(f"--tool-choice {tool_choice!r} is not a tool; the tools are: {listed}")
    emit = on_event or (lambda kind, data: None)
    messages: list[dict] = [{"role": "user", "content": question}]
    result = AgentResult(answer="")
    with httpx.Client(verify=tls.verify(llm.verify)) as session:
        for number in range(1, max_rounds + 1):
            if number == max_rounds:
                choice: str | dict = "none"
            elif number == 1:
                choice = tool_choice_value(tool_choice)
            else:
                choice = "auto"
            choice_data = ask_model(session, llm, model, messages, tools, choice, timeout_s)
            message = choice_data["message"]
            reasoning = message.get("reasoning") or message.get("reasoning_content") or ""
            content = message.get("content") or ""
            calls = message.get("tool_calls") or []
            current = Round(reasoning, content, calls)
            result.rounds.append(current)
            result.finish_reason = choice_data.get("finish_reason") or ""
            emit("round", (number, current))
            if not calls:
                result.answer = content
                return result
            # Reasoning is not sent back: DeepSeek's advice for R1 multi-turn.
            messages.append({"role": "assistant", "content": content, "tool_calls": calls})
            for call in calls:
                function = call["function"]
                status, text = run_tool(
                    session, gateway, function["name"], function.get("arguments", ""), timeout_s
                )
                run = ToolRun(number, function["name"], function.get("arguments", ""), status, text)
                result.tool_runs.append(run)
                emit("tool", run)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
    raise AgentError(f"the model still called tools in round {max_rounds} (tool_choice none)")
