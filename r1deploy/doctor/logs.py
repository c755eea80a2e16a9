"""Recognised causes in a service's log: the pattern, what it means and the fix.

Pure functions of the log's text and the stack's settings, so tests feed recorded logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The variable that sets each service's published port (roles/r1_stack/defaults/main.yml).
PORT_VARIABLES = {
    "vllm": "r1_stack_vllm_port",
    "llamacpp": "r1_stack_vllm_port",
    "open-webui": "r1_stack_webui_port",
    "tools-gateway": "r1_stack_gateway_port",
    "front-door": "r1_stack_front_door_https_port / r1_stack_front_door_http_port",
}

OOM = re.compile(r"CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError: CUDA")
KV_CACHE = re.compile(
    r"not enough KV cache|No available memory for the cache blocks"
    r"|larger than the maximum number of tokens that can be stored in KV cache",
    re.I,
)
PORT_IN_USE = re.compile(r"Address already in use|EADDRINUSE|address already in use")
NO_SPACE = re.compile(r"No space left on device|ENOSPC")
HUB_AUTH = re.compile(
    r"401 Client Error|Invalid credentials in Authorization header"
    r"|GatedRepoError|Invalid user token|Access to model .* is restricted"
    r"|huggingface_hub\.errors\.HfHubHTTPError: 401"
)
MODEL_MISSING = re.compile(
    r"is not a local folder and is not a valid model identifier"
    r"|Invalid repository ID or local directory specified"
    # vLLM 0.32 takes a model directory that does not exist for a hub id, which it refuses.
    r"|Repo id must be in the form 'repo_name' or 'namespace/repo_name'"
    r"|does not appear to have a file named config\.json"
    r"|RepositoryNotFoundError|Repository Not Found"
    r"|Can't load the configuration of"
    r"|No such file or directory: '[^']*/models/"
    r"|LocalEntryNotFoundError"
)


@dataclass(frozen=True)
class Cause:
    id: str
    cause: str
    fix: str
    line: str  # the last log line that shows it


def oom_numbers(settings: dict) -> str:
    """What has to fit in the GPU's memory, from r1deploy/model_facts.json: the weights, the
    KV cache a token and one sequence of max_model_len, and the GPU memory that needs at the
    stack's gpu_memory_utilization (a floor: activations and CUDA graphs come on top); ''
    when the file does not know the model."""
    from r1deploy import modelfacts

    model = settings.get("model") or {}
    found = None
    for name in (model.get("id"), model.get("path")):
        found = found or (modelfacts.find(str(name)) if name else None)
    if not found or "weights_bytes" not in found[1]:
        return ""
    facts = found[1]
    gib = 1024**3
    weights = facts["weights_bytes"] / gib
    per_token = modelfacts.kv_bytes_per_token(facts)
    numbers = f"weights {weights:.1f} GiB; KV cache {per_token:,} bytes a token"
    try:
        length = int(model.get("max_model_len"))
        utilisation = float((settings.get("vllm") or {}).get("gpu_memory_utilization"))
    except (TypeError, ValueError):
        return numbers
    sequence = length * per_token / gib
    floor = (weights + sequence) / utilisation
    return (
        f"{numbers}, {sequence:.2f} GiB for one sequence of max_model_len {length}; at "
        f"gpu_memory_utilization {utilisation:g} that needs a GPU of at least {floor:.1f} GiB"
    )


def oom_fix(settings: dict, kv_cache: bool) -> str:
    """How to make the model fit: the variables to change, with the values the stack has."""
    model = settings.get("model") or {}
    vllm = settings.get("vllm") or {}
    length = model.get("max_model_len", "?")
    utilisation = vllm.get("gpu_memory_utilization", "?")
    first = (
        f"lower r1_stack_max_model_len (now {length}), which the KV cache grows with, "
        f"or, when nothing else uses the GPU, raise r1_stack_gpu_memory_utilization "
        f"(now {utilisation})"
        if kv_cache
        else f"set r1_stack_max_num_seqs (e.g. 32; 0 keeps vLLM's default), lower "
        f"r1_stack_max_model_len (now {length}), and lower r1_stack_gpu_memory_utilization "
        f"(now {utilisation}) when another process shares the GPU"
    )
    return (
        f"{first}; then make deploy. Without a GPU that fits: the cpu profile "
        "(r1_stack_profile: cpu, llama.cpp with the Q4_K_M GGUF)"
    )


def _last_line(pattern: re.Pattern, text: str) -> str | None:
    found = None
    for line in text.splitlines():
        if pattern.search(line):
            found = line.strip()
    return found


def _trim(line: str, limit: int = 160) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


def recognise(text: str | None, service: str, settings: dict) -> list[Cause]:
    """The recognised causes in ``text`` (a log's end), most specific first."""
    if not text:
        return []
    model = settings.get("model") or {}
    causes = []

    def add(cause_id: str, pattern: re.Pattern, cause: str, fix: str) -> None:
        line = _last_line(pattern, text)
        if line:
            causes.append(Cause(cause_id, cause, fix, _trim(line)))

    add(
        "port-in-use",
        PORT_IN_USE,
        f"{service}'s port is taken by another process",
        "find it with `ss -ltnp` (the port in settings.json), stop it, or move "
        f"{service} with {PORT_VARIABLES.get(service, 'its port variable')}; then make deploy",
    )
    add(
        "kv-cache",
        KV_CACHE,
        "the model's KV cache does not fit in the GPU memory vLLM may use",
        oom_fix(settings, kv_cache=True),
    )
    add(
        "cuda-oom",
        OOM,
        "CUDA out of memory: the GPU has too little free memory for vLLM",
        oom_fix(settings, kv_cache=False),
    )
    add(
        "no-space",
        NO_SPACE,
        "the disk is full (No space left on device)",
        "free space on the file system of the stack directory and the model cache "
        "(data/hf-cache, or r1_stack_hf_cache_dir; docker: `docker system prune`), then "
        "make deploy; `r1deploy doctor --only disk` shows the numbers",
    )
    add(
        "hub-auth",
        HUB_AUTH,
        "the Hugging Face hub refused the download (HTTP 401: a wrong, "
        "expired or missing token, or a gated model)",
        "set r1_stack_hf_token (written to .env as HF_TOKEN; keep it in a vault) to a token "
        "that may read " + str(model.get("id", "the model")) + ", then make deploy",
    )
    add(
        "model-missing",
        MODEL_MISSING,
        f"the model {model.get('path', '?')!r} is not where the server looks for it",
        "with r1_stack_model_source: local, r1_stack_model_dir must hold the model's "
        "config.json, tokenizer and weights; with hub, r1_stack_model_id must name a model on "
        "the hub (and the host must reach it); then make deploy",
    )
    return causes


def last_lines(text: str | None, count: int = 5) -> list[str]:
    if not text:
        return []
    return [_trim(line.rstrip()) for line in text.splitlines() if line.strip()][-count:]
