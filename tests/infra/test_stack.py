"""The deployed stack directory (docs/stack-dir.md): file modes, published ports, containers."""

import json
from urllib.parse import urlsplit

import pytest


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        (".env", 0o600),
        ("compose.yaml", 0o644),
        ("settings.json", 0o644),
        ("tools.json", 0o644),
    ],
)
def test_stack_file_has_the_contract_mode(host, stack_dir, name, mode):
    path = host.file(f"{stack_dir}/{name}")
    assert path.exists, f"{stack_dir}/{name} is missing"
    assert path.mode == mode, f"{stack_dir}/{name} has mode {oct(path.mode)}, want {oct(mode)}"


def test_published_ports_listen(host, stack_settings):
    services = [stack_settings["vllm"], stack_settings["webui"]]
    if stack_settings.get("gateway", {}).get("enabled"):
        services.append(stack_settings["gateway"])
    for service in services:
        port = urlsplit(service["url"]).port
        listening = [s for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")]
        assert listening, f"nothing listens on port {port} ({service['url']})"


def test_containers_running_and_healthy(host, stack_dir):
    out = host.check_output(
        f"docker compose --project-directory {stack_dir} ps --all --format json"
    )
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(rows) == 1 and isinstance(rows[0], list):  # older Compose prints one JSON array
        rows = rows[0]
    assert rows, f"no containers in the stack at {stack_dir}"
    for row in rows:
        assert row["State"] == "running", f"{row['Service']} is {row['State']}"
        assert row.get("Health", "") in ("", "healthy"), f"{row['Service']} is {row['Health']}"
