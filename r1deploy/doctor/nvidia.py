"""gpu.*: the NVIDIA kernel module, the driver's user-space library, Docker's nvidia runtime,
the CDI spec and the GPU inside the model server's container.

Every input comes through ``ctx.host`` (r1deploy/doctor/runner.py): ``nvidia-smi``,
/proc/driver/nvidia/version, the library directories, ``docker info``/``ps``/``exec``, the CDI
spec, ``mokutil`` and the kernel log. Nothing is changed (no ``modprobe``, no restart). Every
check SKIPs when settings.json's profile is not gpu or this machine shows no NVIDIA GPU.
The parsing mirrors roles/preflight/library/nvidia_gpu_info.py (which the package cannot
import: it is an Ansible module).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml

from r1deploy.compose.services import gpu_reservations
from r1deploy.doctor.core import DoctorContext, Verdict, failed, passed, skipped, warned
from r1deploy.doctor.runner import CommandResult

PROC_VERSION = "/proc/driver/nvidia/version"
SYSFS_PCI = "/sys/bus/pci/devices"
NVIDIA_VENDOR = "0x10de"
DISPLAY_CLASS_PREFIX = "0x03"  # PCI display controllers (VGA 0x0300, 3D 0x0302)
# Where the driver's packages put libnvidia-ml.so.<version> (Debian/Ubuntu multiarch, RPM).
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
)
# Where nvidia-ctk cdi generate writes the spec (the role's nvidia_container_toolkit_cdi_spec
# is the first) and where Docker's CDI support reads specs from.
CDI_SPECS = (
    "/etc/cdi/nvidia.yaml",
    "/var/run/cdi/nvidia.yaml",
    "/etc/cdi/nvidia.json",
    "/var/run/cdi/nvidia.json",
)
SMI_QUERY = ["nvidia-smi", "--query-gpu=index,name,driver_version", "--format=csv,noheader"]
NVML_ISSUE = "NVIDIA/nvidia-container-toolkit#48"

VERSION = r"\d{3}\.\d+(?:\.\d+)?"
MODULE_VERSION = re.compile(rf"Kernel Module(?: for \S+)?\s+({VERSION})")
LIB_ML = re.compile(rf"^libnvidia-ml\.so\.({VERSION})$")
SPEC_VERSION = re.compile(rf"(?:lib(?:nvidia|cuda)[\w.-]*?\.so\.|/firmware/nvidia/)({VERSION})")
MISMATCH = re.compile(r"Driver/library version mismatch", re.I)
NVML_LIBRARY = re.compile(r"NVML library version:\s*(\S+)")
NVML_UNKNOWN = re.compile(r"Failed to initialize NVML: Unknown Error", re.I)
# What the kernel and modprobe say when Secure Boot's lockdown refuses a module.
KEY_REJECTED = re.compile(
    r"Key was rejected by service"
    r"|Loading of unsigned module is rejected"
    r"|Loading of module with unavailable key is rejected"
    r"|unsigned module loading is restricted"
    r"|PKCS#7 signature not signed with a trusted key",
    re.I,
)
KERNEL_LOGS = (
    ["dmesg"],
    ["journalctl", "-b", "-u", "systemd-modules-load", "--no-pager", "-o", "cat"],
)

SECURE_BOOT_FIX = (
    "enroll the key DKMS signs the module with, reboot, and confirm it in MokManager on the "
    "console: Ubuntu: update-secureboot-policy --enroll-key (the key "
    "/var/lib/shim-signed/mok/MOK.der); Debian 12: mokutil --import /var/lib/dkms/mok.pub. "
    "Or use modules the distribution signed (Ubuntu: the prebuilt "
    "linux-modules-nvidia-<branch>-server-<kernel flavour> packages, ubuntu-drivers install), "
    "or switch Secure Boot off in the firmware; modprobe nvidia shows the error"
)


def _timeout(ctx: DoctorContext) -> float:
    return max(ctx.timeout_s, 10.0)  # nvidia-smi takes seconds without persistence mode


@dataclass
class GpuFacts:
    """What this machine says about its NVIDIA GPUs, read once per run."""

    pci_gpus: list[str]
    module_line: str | None  # the NVRM line of /proc/driver/nvidia/version
    module_version: str | None
    smi: CommandResult
    libraries: dict[str, str] = field(default_factory=dict)  # path -> version

    @property
    def present(self) -> bool:
        return bool(self.pci_gpus or self.module_line or self.smi.ok)

    @property
    def library_versions(self) -> list[str]:
        return sorted(set(self.libraries.values()))

    @property
    def smi_gpus(self) -> list[list[str]]:
        """nvidia-smi's rows: [index, name, driver_version] each (when it answers)."""
        if not self.smi.ok:
            return []
        rows = [[p.strip() for p in line.split(",")] for line in self.smi.stdout.splitlines()]
        return [row for row in rows if len(row) == 3]

    @property
    def smi_driver(self) -> str | None:
        rows = self.smi_gpus
        return rows[0][2] if rows else None

    @property
    def running_version(self) -> str | None:
        """The driver that runs: the loaded module's version, else nvidia-smi's."""
        return self.module_version or self.smi_driver

    def to_data(self) -> dict:
        return {
            "pci_gpus": self.pci_gpus,
            "kernel_module": self.module_version,
            "libraries": self.libraries,
            "nvidia_smi": {"rc": self.smi.rc, "first_line": self.smi.first_line},
        }


def _pci_gpus(ctx: DoctorContext) -> list[str]:
    found = []
    for slot in ctx.host.list_dir(SYSFS_PCI) or []:
        vendor = (ctx.host.read_text(f"{SYSFS_PCI}/{slot}/vendor") or "").strip().lower()
        klass = (ctx.host.read_text(f"{SYSFS_PCI}/{slot}/class") or "").strip().lower()
        if vendor == NVIDIA_VENDOR and klass.startswith(DISPLAY_CLASS_PREFIX):
            found.append(slot)
    return found


def gpu_facts(ctx: DoctorContext) -> GpuFacts:
    if "nvidia" not in ctx.facts:
        text = ctx.host.read_text(PROC_VERSION)
        line = next(
            (x.strip() for x in (text or "").splitlines() if x.startswith("NVRM version:")), None
        )
        match = MODULE_VERSION.search(line or "")
        libraries = {}
        for directory in LIBRARY_DIRS:
            for name in ctx.host.list_dir(directory) or []:
                lib = LIB_ML.match(name)
                if lib:
                    libraries[f"{directory}/{name}"] = lib.group(1)
        ctx.facts["nvidia"] = GpuFacts(
            pci_gpus=_pci_gpus(ctx),
            module_line=line,
            module_version=match.group(1) if match else None,
            smi=ctx.host.run(SMI_QUERY, _timeout(ctx)),
            libraries=libraries,
        )
    return ctx.facts["nvidia"]


def _gate(ctx: DoctorContext) -> tuple[GpuFacts | None, Verdict | None]:
    """The facts, or the SKIP every gpu check gives on a stack or a machine without a GPU."""
    profile = ctx.settings.get("profile")
    if profile != "gpu":
        return None, skipped(f"settings.json profile is {profile!r}: the stack uses no GPU")
    facts = gpu_facts(ctx)
    if not facts.present:
        return None, skipped(
            f"this machine shows no NVIDIA GPU (none in {SYSFS_PCI}, no {PROC_VERSION}, "
            "nvidia-smi does not answer): run the doctor on the GPU host"
        )
    return facts, None


@dataclass(frozen=True)
class ComposeGpu:
    service: str
    drivers: list[str]  # of the GPU reservations: nvidia, cdi (runtime: nvidia counts as nvidia)
    error: str | None = None


def compose_gpu(ctx: DoctorContext) -> ComposeGpu:
    """How compose.yaml's model server asks for GPUs."""
    service = (ctx.settings.get("vllm") or {}).get("service", "vllm")
    path = ctx.stack.path / "compose.yaml"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return ComposeGpu(service, [], f"{path}: {type(exc).__name__}")
    services = (document or {}).get("services") if isinstance(document, dict) else None
    spec = (services or {}).get(service)
    if not isinstance(spec, dict):
        return ComposeGpu(service, [], f"{path} has no service {service}")
    drivers = [str(d.get("driver", "nvidia")) for d, _ in gpu_reservations(spec)]
    if spec.get("runtime") == "nvidia" or "gpus" in spec:
        drivers.append("nvidia")
    return ComposeGpu(service, sorted(set(drivers)))


# ---------------------------------------------------------------- gpu.module


def _kernel_rejections(ctx: DoctorContext) -> tuple[list[str], list[str]]:
    """Lines of the kernel log and the boot's module loading that show a refused key, and
    the logs that could not be read."""
    lines, unread = [], []
    for argv in KERNEL_LOGS:
        result = ctx.host.run(argv, _timeout(ctx))
        if not result.ok:
            unread.append(f"{argv[0]}: {result.first_line}")
            continue
        lines += [x.strip() for x in result.stdout.splitlines() if KEY_REJECTED.search(x)]
    return lines[-3:], unread


def gpu_module(ctx: DoctorContext) -> Verdict:
    facts, skip = _gate(ctx)
    if skip:
        return skip
    sb = ctx.host.run(["mokutil", "--sb-state"], _timeout(ctx))
    sb_line = sb.first_line if not sb.missing else "mokutil is not installed"
    enabled = bool(re.search(r"SecureBoot enabled", sb.output))
    data = {**facts.to_data(), "secure_boot": sb_line}
    if facts.module_line:
        return passed(
            f"the nvidia kernel module {facts.module_version or '?'} is loaded "
            f"({PROC_VERSION}); Secure Boot: {sb_line}",
            **data,
        )
    rejected, unread = _kernel_rejections(ctx)
    data.update(key_rejected=rejected, logs_unread=unread)
    seen = (
        f"no {PROC_VERSION}: the nvidia kernel module is not loaded "
        f"({len(facts.pci_gpus)} NVIDIA GPU(s) on PCI); mokutil --sb-state: {sb_line}"
    )
    if rejected:
        seen += "; the kernel log: " + " | ".join(rejected)
    if enabled or rejected:
        return failed(
            seen,
            "Secure Boot is on and the kernel refuses the nvidia module: it is not signed, "
            "or signed with a key (DKMS's MOK) that the firmware has not enrolled; nothing "
            "can use the GPU",
            SECURE_BOOT_FIX,
            **data,
        )
    return failed(
        seen + ("; " + "; ".join(unread) if unread else ""),
        "the nvidia module is not loaded, and no sign of Secure Boot refusing it: DKMS did "
        "not build it for the running kernel (headers missing), the driver is not "
        "installed, or nouveau holds the GPU",
        "dkms status (a module built for uname -r?); modprobe nvidia shows the error; "
        "make deploy installs the driver and the running kernel's headers (nvidia_driver "
        "role) and reboots",
        **data,
    )


# ---------------------------------------------------------------- gpu.driver_mismatch

MISMATCH_CAUSE = (
    "the driver was upgraded (apt, unattended-upgrades) but the running kernel still has "
    "the old module: the new user-space library refuses it, so nvidia-smi, vLLM and every "
    "container's CUDA fail until the new module loads (a reboot is pending)"
)


def _mismatch_fix(ctx: DoctorContext) -> str:
    stop = (
        f"{ctx.stack.path}/native/r1ctl stop"
        if ctx.native
        else f"docker compose down in {ctx.stack.path}"
    )
    return (
        "reboot the host (the new module loads at boot and the stack starts again; "
        "make deploy to be sure). Without a reboot, when nothing uses the GPU: stop the "
        f"stack ({stop}), then rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && "
        "modprobe nvidia (lsof /dev/nvidia* shows what still holds it). To keep it from "
        "happening unattended: apt-mark hold the driver packages and upgrade them in a "
        "window with a reboot"
    )


def gpu_driver_mismatch(ctx: DoctorContext) -> Verdict:
    facts, skip = _gate(ctx)
    if skip:
        return skip
    data = facts.to_data()
    module, libraries = facts.module_version, facts.library_versions
    if MISMATCH.search(facts.smi.output):
        nvml = NVML_LIBRARY.search(facts.smi.output)
        seen = f"nvidia-smi: {facts.smi.first_line}"
        if nvml:
            seen += f" (NVML library version {nvml.group(1)})"
        seen += f"; kernel module {module or 'not read'}"
        if libraries:
            seen += f", libnvidia-ml {', '.join(libraries)}"
        data["nvml_library"] = nvml.group(1) if nvml else None
        return failed(seen, MISMATCH_CAUSE, _mismatch_fix(ctx), **data)
    if not module:
        return skipped(
            f"the nvidia kernel module is not loaded (no {PROC_VERSION}): nothing to "
            "compare (gpu.module says why)"
        )
    if libraries and module not in libraries:
        paths = ", ".join(sorted(facts.libraries))
        return failed(
            f"kernel module {module} ({PROC_VERSION}) but the user-space library is "
            f"{', '.join(libraries)} ({paths})",
            MISMATCH_CAUSE,
            _mismatch_fix(ctx),
            **data,
        )
    if not facts.smi.ok:
        return warned(
            f"nvidia-smi fails: {facts.smi.first_line}; kernel module {module}, "
            f"libnvidia-ml {', '.join(libraries) or 'not found'}",
            "nvidia-smi fails, but not with a driver/library version mismatch",
            "run nvidia-smi on the host and read its message; make deploy installs the "
            "driver's utilities (nvidia_driver role)",
            **data,
        )
    gpus = facts.smi_gpus
    return passed(
        f"kernel module {module}, libnvidia-ml {', '.join(libraries) or 'not found'}; "
        f"nvidia-smi answers: driver {facts.smi_driver}, {len(gpus)} GPU(s) "
        f"({', '.join(row[1] for row in gpus)})",
        **data,
    )


# ---------------------------------------------------------------- gpu.docker_runtime


def gpu_docker_runtime(ctx: DoctorContext) -> Verdict:
    facts, skip = _gate(ctx)
    if skip:
        return skip
    if ctx.native:
        return skipped("the native runtime runs the model server without docker")
    asks = compose_gpu(ctx)
    if asks.error:
        return skipped(f"cannot read how the stack asks for GPUs: {asks.error}")
    if not asks.drivers:
        return skipped(f"compose.yaml's {asks.service} asks for no GPU")
    if asks.drivers == ["cdi"]:
        return skipped(
            f"compose.yaml's {asks.service} asks for its GPU by CDI (driver: cdi), which "
            "does not go through the nvidia runtime (gpu.cdi_spec checks the spec)"
        )
    info = ctx.host.run(["docker", "info", "--format", "{{json .Runtimes}}"], _timeout(ctx))
    try:
        runtimes = json.loads(info.stdout) if info.ok else None
    except ValueError:
        runtimes = None
    if not isinstance(runtimes, dict):
        return warned(
            f"docker info --format '{{{{json .Runtimes}}}}' did not answer: {info.first_line}",
            "docker does not answer (not running, or this user may not use its socket): "
            "whether it has the nvidia runtime is unknown",
            "run the doctor as root on the host; systemctl status docker",
            docker_info=info.first_line,
        )
    names = sorted(runtimes)
    data = {"runtimes": names, "compose_gpu_drivers": asks.drivers}
    if "nvidia" in runtimes:
        path = (runtimes["nvidia"] or {}).get("path", "?")
        return passed(f"docker's runtimes: {', '.join(names)} (nvidia: {path})", **data)
    return failed(
        f"docker's runtimes: {', '.join(names) or 'none'}: no nvidia, while compose.yaml's "
        f"{asks.service} reserves GPUs (driver: nvidia)",
        "Docker has no nvidia runtime: the container toolkit is not installed, or "
        "/etc/docker/daemon.json lost its entry (rewritten, Docker reinstalled); without "
        'the toolkit the GPU request fails (could not select device driver "nvidia" '
        "with capabilities: [[gpu]]) and make deploy's check (docker info lists nvidia) "
        "stops",
        "nvidia-ctk runtime configure --runtime=docker, then systemctl restart docker; "
        "or make deploy, whose nvidia_container_toolkit role installs the toolkit, "
        "registers the runtime and restarts Docker",
        **data,
    )


# ---------------------------------------------------------------- gpu.cdi_spec


def gpu_cdi_spec(ctx: DoctorContext) -> Verdict:
    facts, skip = _gate(ctx)
    if skip:
        return skip
    asks = compose_gpu(ctx) if not ctx.native else ComposeGpu("vllm", [])
    uses_cdi = "cdi" in asks.drivers
    specs = {p: t for p in CDI_SPECS if (t := ctx.host.read_text(p)) is not None}
    if not specs:
        if uses_cdi:
            return failed(
                f"no CDI spec ({', '.join(CDI_SPECS[:2])}), while compose.yaml's "
                f"{asks.service} asks for nvidia.com/gpu devices (driver: cdi)",
                "Docker cannot resolve the CDI device names: the model server does not "
                "start (unresolvable CDI devices nvidia.com/gpu=...)",
                "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (or set "
                "nvidia_container_toolkit_cdi_enabled: true and make deploy)",
            )
        return skipped(
            f"no CDI spec ({', '.join(CDI_SPECS[:2])}); the stack asks for its GPU "
            "through the nvidia runtime"
        )
    # The spec mounts the driver's files on disk: it must name the installed libraries'
    # version (after an upgrade, before the reboot, the loaded module is still the old one).
    libraries = facts.library_versions
    if len(libraries) == 1:
        running = libraries[0]
        label = f"the installed driver is {running} (libnvidia-ml.so.{running})"
    else:
        running = facts.running_version
        label = f"the running driver is {running}"
    if not running:
        return skipped(
            "the driver's version is unknown (no libnvidia-ml.so.<version>, no kernel "
            "module loaded, nvidia-smi fails): gpu.module and gpu.driver_mismatch say why"
        )
    named = {p: sorted(set(SPEC_VERSION.findall(t))) for p, t in specs.items()}
    stale = {p: v for p, v in named.items() if any(x != running for x in v)}
    data = {"running": running, "specs": named, "compose_uses_cdi": uses_cdi}
    if not stale:
        return passed(
            "; ".join(
                f"{p} names driver {', '.join(v)}" if v else f"{p} names no driver version"
                for p, v in named.items()
            )
            + f"; {label}",
            **data,
        )
    seen = "; ".join(f"{p} names driver {', '.join(v)}" for p, v in stale.items())
    seen += f"; {label}"
    fix = (
        "; ".join(f"nvidia-ctk cdi generate --output={p}" for p in stale)
        + " (make deploy writes the spec only when it is missing: it does not renew it); "
        "nvidia-ctk cdi list shows the devices"
    )
    if uses_cdi:
        return failed(
            seen,
            "the CDI spec was generated for another driver: the libraries and firmware it "
            f"mounts are gone, so {asks.service}'s container (driver: cdi) does not start, "
            "or gets the old libraries",
            fix,
            **data,
        )
    return warned(
        seen,
        "the CDI spec was generated for another driver; the stack asks for its GPU "
        "through the nvidia runtime now, so only CDI users (docker --device "
        "nvidia.com/gpu=..., r1_stack_gpu_driver: cdi) fail on it",
        fix,
        **data,
    )


# ---------------------------------------------------------------- gpu.container_nvml


def gpu_container_nvml(ctx: DoctorContext) -> Verdict:
    facts, skip = _gate(ctx)
    if skip:
        return skip
    if ctx.native:
        return skipped("the native runtime runs the model server without a container")
    if not facts.smi.ok:
        return skipped(
            f"the host's nvidia-smi fails too ({facts.smi.first_line}): gpu.driver_mismatch "
            "and gpu.module say why"
        )
    service = (ctx.settings.get("vllm") or {}).get("service", "vllm")
    project = ctx.settings.get("project_name") or "r1deploy"
    ps = ctx.host.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        ],
        _timeout(ctx),
    )
    if not ps.ok:
        return skipped(f"docker ps did not answer: {ps.first_line}")
    names = [x.strip() for x in ps.stdout.splitlines() if x.strip()]
    if not names:
        return skipped(
            f"no running {service} container of the compose project {project} "
            "(services.reachable says why)"
        )
    name = names[0]
    inside = ctx.host.run(["docker", "exec", name, "nvidia-smi", "-L"], _timeout(ctx))
    host_gpus = len(facts.smi_gpus)
    data = {"container": name, "rc": inside.rc, "first_line": inside.first_line}
    if inside.ok:
        listed = [x for x in inside.stdout.splitlines() if x.startswith("GPU ")]
        return passed(
            f"{name}: nvidia-smi -L lists {len(listed)} GPU(s) ({inside.first_line}); "
            f"the host's lists {host_gpus}",
            **data,
        )
    if NVML_UNKNOWN.search(inside.output):
        return failed(
            f"{name}: docker exec {name} nvidia-smi -L says {inside.first_line!r}, while "
            f"the host's nvidia-smi lists {host_gpus} GPU(s)",
            "the container lost its GPU: systemd re-applied the container's cgroup "
            "(systemctl daemon-reload, or a package install that runs it) and dropped the "
            f"device rules the nvidia runtime had added behind its back ({NVML_ISSUE}); "
            "vLLM's CUDA calls fail from then on",
            f"now: docker restart {name} (or docker compose restart {service} in "
            f"{ctx.stack.path}). For good: ask for the GPU through CDI "
            "(r1_stack_gpu_driver: cdi with nvidia_container_toolkit_cdi_enabled: true, "
            "then make deploy), or run Docker with the cgroupfs cgroup driver "
            '("exec-opts": ["native.cgroupdriver=cgroupfs"] in /etc/docker/daemon.json, '
            f"then systemctl restart docker); see {NVML_ISSUE}",
            **data,
        )
    if inside.missing or "executable file not found" in inside.output:
        return skipped(f"{name} has no nvidia-smi to ask ({inside.first_line})")
    return warned(
        f"{name}: nvidia-smi -L fails: {inside.first_line}; the host's lists {host_gpus} GPU(s)",
        "the container cannot reach the GPU, and not with NVML's Unknown Error",
        f"docker restart {name}; its log: make logs SERVICE={service}",
        **data,
    )
