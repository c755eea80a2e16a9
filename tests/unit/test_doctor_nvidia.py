"""`r1deploy doctor`'s gpu.* checks on recorded host outputs (tests/support/recorded_host.py,
fixtures under tests/unit/fixtures/doctor/nvidia/): each fires on its fault with the cause
and the fix, and passes on a healthy GPU host; all SKIP without a GPU or a gpu profile."""

from __future__ import annotations

import json

import pytest
import yaml

from r1deploy.cli import main
from r1deploy.doctor.checks import DOCTOR_CHECKS
from r1deploy.doctor.core import FAIL, PASS, SKIP, WARN
from r1deploy.doctor.nvidia import (
    gpu_cdi_spec,
    gpu_container_nvml,
    gpu_docker_runtime,
    gpu_driver_mismatch,
    gpu_module,
)
from tests.support.recorded_host import RecordedHost, Reply, fixture
from tests.unit.test_doctor import ctx_for, make_stack

NEW, OLD = "550.127.05", "550.54.14"
LIB = "/usr/lib/x86_64-linux-gnu"
CONTAINER = "r1deploy-vllm-1"
GPU_CHECKS = [gpu_module, gpu_driver_mismatch, gpu_docker_runtime, gpu_cdi_spec, gpu_container_nvml]


def nv(name: str) -> str:
    return fixture(f"nvidia/{name}")


def gpu_host(
    *,
    module: str | None = NEW,
    library: str = NEW,
    smi: Reply | None = None,
    runtimes: str = "docker-info-runtimes-nvidia.json",
    cdi: dict[str, str] | None = None,
    container_smi: Reply | None = None,
    sb_state: str = "mokutil-sb-state-disabled.txt",
    dmesg: str = "dmesg-healthy.txt",
    journal: str | None = None,
) -> RecordedHost:
    """A GPU host (one H100 on PCI) as its commands and files show it; healthy by default."""
    files = {
        "/sys/bus/pci/devices/0000:00:1f.0/vendor": "0x8086\n",
        "/sys/bus/pci/devices/0000:00:1f.0/class": "0x060100\n",
        "/sys/bus/pci/devices/0000:18:00.0/vendor": "0x10de\n",
        "/sys/bus/pci/devices/0000:18:00.0/class": "0x030200\n",
    }
    if module:
        files["/proc/driver/nvidia/version"] = nv(f"proc-driver-nvidia-version-{module}.txt")
    for path, name in (cdi or {}).items():
        files[path] = nv(name)
    commands = {
        "nvidia-smi": smi or Reply(0, nv("nvidia-smi-query-healthy.txt")),
        "mokutil --sb-state": nv(sb_state),
        "dmesg": nv(dmesg),
        "docker info": nv(runtimes),
        "docker ps": f"{CONTAINER}\n",
        f"docker exec {CONTAINER} nvidia-smi -L": container_smi
        or Reply(0, nv("nvidia-smi-L-healthy.txt")),
    }
    if journal:
        commands["journalctl"] = nv(journal)
    return RecordedHost(
        commands,
        files,
        dirs={
            "/sys/bus/pci/devices": ["0000:00:1f.0", "0000:18:00.0"],
            LIB: ["libc.so.6", f"libnvidia-ml.so.{library}", "libnvidia-ml.so.1"],
        },
    )


def gpu_stack(tmp_path, *, driver: str = "nvidia", runtime: str = "docker", profile="gpu"):
    root = make_stack(tmp_path / "stack", runtime=runtime)
    settings = json.loads((root / "settings.json").read_text())
    settings.update(profile=profile, project_name="r1deploy")
    (root / "settings.json").write_text(json.dumps(settings))
    device = (
        {"driver": "cdi", "device_ids": ["nvidia.com/gpu=all"], "capabilities": ["gpu"]}
        if driver == "cdi"
        else {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    )
    compose = {
        "name": "r1deploy",
        "services": {
            "vllm": {
                "image": "vllm/vllm-openai:v0.32.0",
                "deploy": {"resources": {"reservations": {"devices": [device]}}},
            },
            "open-webui": {"image": "ghcr.io/open-webui/open-webui:v0.6.34"},
        },
    }
    (root / "compose.yaml").write_text(yaml.safe_dump(compose))
    return root


def check(root, host, func):
    return func(ctx_for(root, host=host))


# ---------------------------------------------------------------- a healthy GPU host


def test_every_gpu_check_passes_on_a_healthy_gpu_host(tmp_path):
    root = gpu_stack(tmp_path)
    host = gpu_host(cdi={"/etc/cdi/nvidia.yaml": f"cdi-nvidia-{NEW}.yaml"})
    verdicts = {f.__name__: check(root, host, f) for f in GPU_CHECKS}
    assert {n: v.status for n, v in verdicts.items()} == dict.fromkeys(verdicts, PASS)
    assert verdicts["gpu_module"].seen.startswith(f"the nvidia kernel module {NEW} is loaded")
    assert f"libnvidia-ml {NEW}; nvidia-smi answers: driver {NEW}, 1 GPU(s)" in (
        verdicts["gpu_driver_mismatch"].seen
    )
    assert "(nvidia: nvidia-container-runtime)" in verdicts["gpu_docker_runtime"].seen
    assert f"/etc/cdi/nvidia.yaml names driver {NEW}" in verdicts["gpu_cdi_spec"].seen
    assert "nvidia-smi -L lists 1 GPU(s)" in verdicts["gpu_container_nvml"].seen


@pytest.mark.parametrize("func", GPU_CHECKS, ids=lambda f: f.__name__)
def test_every_gpu_check_skips_on_the_cpu_profile_and_without_a_gpu(tmp_path, func):
    cpu = gpu_stack(tmp_path / "cpu", profile="cpu")
    verdict = check(cpu, gpu_host(), func)
    assert verdict.status == SKIP and "profile is 'cpu'" in verdict.seen
    verdict = check(gpu_stack(tmp_path / "gpu"), RecordedHost(), func)
    assert verdict.status == SKIP and "this machine shows no NVIDIA GPU" in verdict.seen


# ---------------------------------------------------------------- gpu.driver_mismatch


@pytest.mark.parametrize(
    "output, nvml",
    [("nvidia-smi-mismatch.txt", "550.127"), ("nvidia-smi-mismatch-old-driver.txt", None)],
    ids=["newer-driver-names-nvml", "older-driver"],
)
def test_a_driver_library_mismatch_fails_with_reboot(tmp_path, output, nvml):
    host = gpu_host(module=OLD, smi=Reply(18, nv(output)))
    verdict = check(gpu_stack(tmp_path), host, gpu_driver_mismatch)
    assert verdict.status == FAIL
    assert "Failed to initialize NVML: Driver/library version mismatch" in verdict.seen
    assert f"kernel module {OLD}, libnvidia-ml {NEW}" in verdict.seen
    assert (f"(NVML library version {nvml})" in verdict.seen) == bool(nvml)
    assert verdict.data["nvml_library"] == nvml
    assert "a reboot is pending" in verdict.cause
    assert verdict.fix.startswith("reboot the host")
    assert "rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && modprobe nvidia" in verdict.fix


def test_a_module_older_than_the_library_fails_even_before_nvidia_smi_says_so(tmp_path):
    # nvidia-smi answering (e.g. a stale one on PATH) does not hide the two versions.
    host = gpu_host(module=OLD, library=NEW)
    verdict = check(gpu_stack(tmp_path), host, gpu_driver_mismatch)
    assert verdict.status == FAIL
    assert verdict.seen.startswith(f"kernel module {OLD} (/proc/driver/nvidia/version)")
    assert f"{LIB}/libnvidia-ml.so.{NEW}" in verdict.seen
    assert "native/r1ctl stop" not in verdict.fix and "docker compose down" in verdict.fix


def test_the_native_runtime_stops_with_r1ctl_before_reloading(tmp_path):
    root = gpu_stack(tmp_path, runtime="native")
    verdict = check(
        root,
        gpu_host(module=OLD, smi=Reply(18, nv("nvidia-smi-mismatch.txt"))),
        gpu_driver_mismatch,
    )
    assert verdict.status == FAIL and f"{root}/native/r1ctl stop" in verdict.fix


# ---------------------------------------------------------------- gpu.container_nvml


def test_nvml_lost_in_the_container_fails_with_restart_and_the_issue(tmp_path):
    unknown = Reply(255, nv("nvidia-smi-L-nvml-unknown-error.txt"))
    host = gpu_host(container_smi=unknown)
    verdict = check(gpu_stack(tmp_path), host, gpu_container_nvml)
    assert verdict.status == FAIL
    assert "'Failed to initialize NVML: Unknown Error'" in verdict.seen
    assert "the host's nvidia-smi lists 1 GPU(s)" in verdict.seen
    assert "systemctl daemon-reload" in verdict.cause
    assert "NVIDIA/nvidia-container-toolkit#48" in verdict.cause
    assert verdict.fix.startswith(f"now: docker restart {CONTAINER}")
    assert "r1_stack_gpu_driver: cdi" in verdict.fix
    assert "native.cgroupdriver=cgroupfs" in verdict.fix
    ps = next(argv for argv in host.ran if argv[:2] == ("docker", "ps"))
    assert "label=com.docker.compose.project=r1deploy" in ps
    assert "label=com.docker.compose.service=vllm" in ps


def test_container_nvml_skips_when_the_host_fails_too_or_nothing_runs(tmp_path):
    root = gpu_stack(tmp_path)
    mismatch = gpu_host(module=OLD, smi=Reply(18, nv("nvidia-smi-mismatch.txt")))
    verdict = check(root, mismatch, gpu_container_nvml)
    assert verdict.status == SKIP and "the host's nvidia-smi fails too" in verdict.seen
    idle = gpu_host()
    idle.commands["docker ps"] = ""
    verdict = check(root, idle, gpu_container_nvml)
    assert verdict.status == SKIP and "no running vllm container" in verdict.seen
    native = gpu_stack(tmp_path / "native", runtime="native")
    assert check(native, gpu_host(), gpu_container_nvml).status == SKIP


# ---------------------------------------------------------------- gpu.docker_runtime


def test_docker_without_the_nvidia_runtime_fails_with_nvidia_ctk(tmp_path):
    host = gpu_host(runtimes="docker-info-runtimes-without-nvidia.json")
    verdict = check(gpu_stack(tmp_path), host, gpu_docker_runtime)
    assert verdict.status == FAIL
    assert verdict.seen.startswith("docker's runtimes: io.containerd.runc.v2, runc: no nvidia")
    assert "reserves GPUs (driver: nvidia)" in verdict.seen
    assert "nvidia-ctk runtime configure --runtime=docker" in verdict.fix
    assert "systemctl restart docker" in verdict.fix
    assert "nvidia_container_toolkit role" in verdict.fix


def test_docker_runtime_skips_for_cdi_reservations_and_warns_when_docker_is_silent(tmp_path):
    host = gpu_host(runtimes="docker-info-runtimes-without-nvidia.json")
    verdict = check(gpu_stack(tmp_path / "cdi", driver="cdi"), host, gpu_docker_runtime)
    assert verdict.status == SKIP and "driver: cdi" in verdict.seen
    silent = gpu_host()
    silent.commands["docker info"] = Reply(
        1, "", "permission denied while trying to connect to the Docker daemon socket"
    )
    verdict = check(gpu_stack(tmp_path / "nvidia"), silent, gpu_docker_runtime)
    assert verdict.status == WARN and "permission denied" in verdict.seen


# ---------------------------------------------------------------- gpu.cdi_spec


@pytest.mark.parametrize("driver, status", [("nvidia", WARN), ("cdi", FAIL)])
def test_a_cdi_spec_of_the_old_driver_warns_or_fails_when_the_stack_uses_cdi(
    tmp_path, driver, status
):
    host = gpu_host(cdi={"/var/run/cdi/nvidia.yaml": f"cdi-nvidia-{OLD}.yaml"})
    verdict = check(gpu_stack(tmp_path, driver=driver), host, gpu_cdi_spec)
    assert verdict.status == status
    assert verdict.seen == (
        f"/var/run/cdi/nvidia.yaml names driver {OLD}; the installed driver is {NEW} "
        f"(libnvidia-ml.so.{NEW})"
    )
    assert verdict.fix.startswith("nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml")
    assert "does not renew it" in verdict.fix


def test_a_cdi_spec_is_held_to_the_installed_driver_while_a_reboot_is_pending(tmp_path):
    # The old module still runs, but the spec mounts files of disk: the new driver's.
    host = gpu_host(
        module=OLD,
        smi=Reply(18, nv("nvidia-smi-mismatch.txt")),
        cdi={"/etc/cdi/nvidia.yaml": f"cdi-nvidia-{OLD}.yaml"},
    )
    verdict = check(gpu_stack(tmp_path, driver="cdi"), host, gpu_cdi_spec)
    assert verdict.status == FAIL and f"the installed driver is {NEW}" in verdict.seen
    good = gpu_host(module=OLD, cdi={"/etc/cdi/nvidia.yaml": f"cdi-nvidia-{NEW}.yaml"})
    assert check(gpu_stack(tmp_path / "b"), good, gpu_cdi_spec).status == PASS


def test_no_cdi_spec_skips_unless_the_stack_asks_for_cdi(tmp_path):
    assert check(gpu_stack(tmp_path / "a"), gpu_host(), gpu_cdi_spec).status == SKIP
    verdict = check(gpu_stack(tmp_path / "b", driver="cdi"), gpu_host(), gpu_cdi_spec)
    assert verdict.status == FAIL
    assert "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml" in verdict.fix


# ---------------------------------------------------------------- gpu.module


@pytest.mark.parametrize(
    "dmesg, journal, shown",
    [
        ("dmesg-key-rejected.txt", None, "Loading of unsigned module is rejected"),
        (
            "dmesg-healthy.txt",
            "journal-modules-load-key-rejected.txt",
            "Failed to insert module 'nvidia': Key was rejected by service",
        ),
    ],
    ids=["dmesg", "systemd-modules-load"],
)
def test_secure_boot_refusing_the_module_fails_with_the_mok_enrolment(
    tmp_path, dmesg, journal, shown
):
    host = gpu_host(
        module=None,
        smi=Reply(9, fixture_smi_no_driver()),
        sb_state="mokutil-sb-state-enabled.txt",
        dmesg=dmesg,
        journal=journal,
    )
    verdict = check(gpu_stack(tmp_path), host, gpu_module)
    assert verdict.status == FAIL
    assert "the nvidia kernel module is not loaded (1 NVIDIA GPU(s) on PCI)" in verdict.seen
    assert "mokutil --sb-state: SecureBoot enabled" in verdict.seen and shown in verdict.seen
    assert "Secure Boot is on and the kernel refuses the nvidia module" in verdict.cause
    assert "update-secureboot-policy --enroll-key" in verdict.fix
    assert "mokutil --import /var/lib/dkms/mok.pub" in verdict.fix


def test_secure_boot_on_and_no_module_fails_even_without_a_readable_log(tmp_path):
    host = gpu_host(
        module=None, smi=Reply(9, fixture_smi_no_driver()), sb_state="mokutil-sb-state-enabled.txt"
    )
    del host.commands["dmesg"]
    verdict = check(gpu_stack(tmp_path), host, gpu_module)
    assert verdict.status == FAIL and "MokManager" in verdict.fix


def test_no_module_with_secure_boot_off_names_dkms(tmp_path):
    host = gpu_host(module=None, smi=Reply(9, fixture_smi_no_driver()))
    verdict = check(gpu_stack(tmp_path), host, gpu_module)
    assert verdict.status == FAIL and "no sign of Secure Boot" in verdict.cause
    assert "dkms status" in verdict.fix
    # The mismatch check has nothing to compare then, and says where to look.
    verdict = check(gpu_stack(tmp_path / "b"), host, gpu_driver_mismatch)
    assert verdict.status == SKIP and "gpu.module says why" in verdict.seen


def test_secure_boot_on_with_a_signed_module_passes(tmp_path):
    host = gpu_host(sb_state="mokutil-sb-state-enabled.txt")
    verdict = check(gpu_stack(tmp_path), host, gpu_module)
    assert verdict.status == PASS and "Secure Boot: SecureBoot enabled" in verdict.seen


def fixture_smi_no_driver() -> str:
    return nv("nvidia-smi-no-driver.txt")


# ---------------------------------------------------------------- the CLI


def test_only_gpu_selects_the_gpu_checks_and_json_has_them(capsys, tmp_path, monkeypatch):
    root = gpu_stack(tmp_path)
    host = gpu_host(runtimes="docker-info-runtimes-without-nvidia.json")
    monkeypatch.setattr("r1deploy.doctor.core.default_host", lambda: host)
    code = main(["doctor", "--stack-dir", str(root), "--only", "gpu", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (
        [c["id"] for c in report["checks"]]
        == [c.id for c in DOCTOR_CHECKS if c.id.startswith("gpu.")]
        == [
            "gpu.module",
            "gpu.driver_mismatch",
            "gpu.docker_runtime",
            "gpu.cdi_spec",
            "gpu.container_nvml",
        ]
    )
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses["gpu.docker_runtime"] == FAIL and statuses["gpu.module"] == PASS
    failing = next(c for c in report["checks"] if c["status"] == FAIL)
    assert failing["fix"] and failing["cause"] and failing["data"]["runtimes"]


def test_the_local_host_runs_reads_and_lists_without_raising(tmp_path):
    from r1deploy.doctor.runner import LocalHost

    host = LocalHost()
    assert host.run(["r1deploy-no-such-program"], 5).missing
    echoed = host.run(["python3", "-c", "import sys; print('out'); sys.exit(3)"], 10)
    assert (echoed.rc, echoed.first_line) == (3, "out")
    (tmp_path / "f").write_text("text")
    assert host.read_text(tmp_path / "f") == "text" and host.read_text(tmp_path / "x") is None
    assert host.list_dir(tmp_path) == ["f"] and host.list_dir(tmp_path / "x") is None
