"""What an OpenAI-compatible model server says about itself, and the few requests that must
be worded for it: vLLM and llama.cpp's llama-server differ where the OpenAI API leaves room
(docs/llamacpp.md lists each difference). Pure functions over the servers' answers, shared
by the smoke (httpx) and the bench (aiohttp); the kind is read from the server's own
``/v1/models`` (``owned_by``), never assumed from the stack's settings.
"""

from __future__ import annotations

VLLM = "vllm"
LLAMACPP = "llamacpp"
# Prometheus metric prefixes each server exports on /metrics.
METRIC_PREFIXES = {VLLM: "vllm:", LLAMACPP: "llamacpp:"}


def kind_of(model_entry: dict) -> str:
    """``vllm``, ``llamacpp`` or what else ``owned_by`` says (a stand-in's own name)."""
    return str(model_entry.get("owned_by") or "unknown")


def max_model_len_of(model_entry: dict) -> int | None:
    """The context one sequence may use: vLLM's ``max_model_len``; llama.cpp's
    ``meta.n_ctx``, the context of one slot (--ctx-size / --parallel)."""
    if model_entry.get("max_model_len") is not None:
        return model_entry["max_model_len"]
    return (model_entry.get("meta") or {}).get("n_ctx")


def named_tool_choice(kind: str, tools: list[dict], name: str) -> dict:
    """Request fields that make the model call the tool ``name``.

    vLLM takes OpenAI's named choice. llama.cpp's server reads ``tool_choice`` as a string
    only (an object is logged as the wrong type and becomes ``auto``), so it gets that one
    tool with ``required``: the same constraint, in the words it honours.
    """
    if kind == LLAMACPP:
        return {
            "tools": [t for t in tools if t["function"]["name"] == name],
            "tool_choice": "required",
        }
    return {"tools": tools, "tool_choice": {"type": "function", "function": {"name": name}}}


def tokenize_request(kind: str, model: str | None, text: str) -> dict:
    # llama.cpp answers vLLM's body with 200 and no tokens: each gets its own words.
    if kind == LLAMACPP:
        return {"content": text, "add_special": False}
    return {"model": model, "prompt": text, "add_special_tokens": False}


def detokenize_request(kind: str, model: str | None, tokens: list[int]) -> dict:
    if kind == LLAMACPP:
        return {"tokens": tokens}
    return {"model": model, "tokens": tokens}


def detokenized_text(kind: str, answer: dict) -> str:
    return answer["content"] if kind == LLAMACPP else answer["prompt"]


def stream_headers(kind: str) -> dict:
    """Headers for a streamed request. llama.cpp's server closes the connection after a
    streamed (chunked) answer although it advertised ``Keep-Alive``; a client that reuses it
    before noticing gets "Server disconnected". Asking for ``Connection: close`` makes the
    client open a new one for each stream, as the server will anyway."""
    return {"Connection": "close"} if kind == LLAMACPP else {}


def metric_families(text: str) -> set[str]:
    """The metric names a Prometheus text exposition declares (``# TYPE name kind``)."""
    return {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE ") and len(line.split()) >= 4
    }
