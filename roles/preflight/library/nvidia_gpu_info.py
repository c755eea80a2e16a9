#!/usr/bin/python
"""Ansible module: what the host says about its NVIDIA GPUs (read-only).

The one place where nvidia-smi output, /proc/driver/nvidia/version and the PCI device list are
parsed; the roles only read the structured result. roles/nvidia_driver/library links here.
The parse_* functions are pure and unit-tested in tests/unit/test_nvidia_gpu_info.py.
"""

from __future__ import annotations

import os
import re

DOCUMENTATION = r"""
module: nvidia_gpu_info
short_description: Report NVIDIA GPUs, their memory and the loaded driver (read-only)
description:
  - Lists PCI devices with the NVIDIA vendor id (0x10de) and a display/3D class from sysfs,
    so a GPU is seen even before any driver is installed.
  - Runs C(nvidia-smi --query-gpu) when present and parses its CSV into per-GPU facts.
  - Reads the loaded kernel module's version from /proc/driver/nvidia/version.
options:
  nvidia_smi:
    description: Path or name of nvidia-smi.
    type: str
    default: nvidia-smi
  sysfs_pci:
    description: Directory of PCI devices (tests point it elsewhere).
    type: path
    default: /sys/bus/pci/devices
author: r1deploy
"""

EXAMPLES = r"""
- name: Read what the host says about its NVIDIA GPUs
  nvidia_gpu_info:
  register: gpu
"""

RETURN = r"""
gpu_present:
  description: True when a PCI NVIDIA GPU is seen or nvidia-smi lists one.
  type: bool
pci_gpus:
  description: NVIDIA display/3D PCI devices, each {slot, device_id, class}.
  type: list
gpus:
  description: From nvidia-smi, each {index, name, memory_total_mib, driver_version, pci_bus_id}.
  type: list
min_memory_mib:
  description: Smallest GPU memory in MiB among the GPUs nvidia-smi lists; null when unknown.
  type: int
driver_version:
  description: Driver version nvidia-smi or the loaded module reports; null when none.
  type: str
driver_loaded:
  description: True when the nvidia kernel module is loaded (/proc/driver/nvidia/version).
  type: bool
nvidia_smi:
  description: "{found, rc, error}: whether nvidia-smi exists and what it said when it failed."
  type: dict
"""

QUERY_FIELDS = ("index", "name", "memory.total", "driver_version", "pci.bus_id")
NVIDIA_VENDOR = "0x10de"
# PCI base class 0x03: display controllers (VGA 0x0300, 3D 0x0302 as on data-centre GPUs).
DISPLAY_CLASS_PREFIX = "0x03"


def parse_query_gpu(text: str) -> list[dict]:
    """Parse `nvidia-smi --query-gpu=index,name,memory.total,driver_version,pci.bus_id
    --format=csv,noheader,nounits`. Fields nvidia-smi cannot read print as [N/A] -> None."""
    gpus = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        # GPU names never contain commas; split from the right would matter otherwise.
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != len(QUERY_FIELDS):
            raise ValueError(
                f"nvidia-smi printed {len(parts)} fields where {len(QUERY_FIELDS)} "
                f"({','.join(QUERY_FIELDS)}) were asked for: {line!r}"
            )
        index, name, memory, driver, bus_id = (None if _na(p) else p for p in parts)
        gpus.append(
            {
                "index": int(index) if index is not None else None,
                "name": name,
                "memory_total_mib": _int_mib(memory),
                "driver_version": driver,
                "pci_bus_id": bus_id,
            }
        )
    return gpus


def _na(value: str) -> bool:
    return value in ("", "[N/A]", "N/A", "[Not Supported]", "[Unknown Error]")


def _int_mib(value: str | None) -> int | None:
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)(?:\s*MiB)?", value)
    return int(match.group(1)) if match else None


def parse_driver_version_file(text: str) -> str | None:
    """Version from /proc/driver/nvidia/version, e.g.
    'NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Thu ...' or
    'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build ...'."""
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            match = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", line)
            if match:
                return match.group(1)
    return None


def parse_smi_error(text: str) -> str:
    """One line saying why nvidia-smi failed (its own first meaningful line)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "nvidia-smi failed without output"


def parse_pci_devices(devices: list[dict]) -> list[dict]:
    """Keep NVIDIA display/3D devices from [{slot, vendor, device, class}] (sysfs strings)."""
    found = []
    for dev in devices:
        vendor = dev.get("vendor", "").strip().lower()
        klass = dev.get("class", "").strip().lower()
        if vendor == NVIDIA_VENDOR and klass.startswith(DISPLAY_CLASS_PREFIX):
            found.append(
                {"slot": dev["slot"], "device_id": dev.get("device", "").strip(), "class": klass}
            )
    return found


def summarize(pci_gpus: list[dict], smi: dict, gpus: list[dict], module_version: str | None):
    memories = [g["memory_total_mib"] for g in gpus if g["memory_total_mib"] is not None]
    versions = [g["driver_version"] for g in gpus if g["driver_version"]]
    return {
        "gpu_present": bool(pci_gpus or gpus),
        "pci_gpus": pci_gpus,
        "gpus": gpus,
        "min_memory_mib": min(memories) if memories else None,
        "driver_version": versions[0] if versions else module_version,
        "driver_loaded": module_version is not None,
        "nvidia_smi": smi,
    }


def read_sysfs_pci(root: str) -> list[dict]:
    devices = []
    if not os.path.isdir(root):
        return devices
    for slot in sorted(os.listdir(root)):
        entry = {"slot": slot}
        for field in ("vendor", "device", "class"):
            try:
                with open(os.path.join(root, slot, field)) as handle:
                    entry[field] = handle.read()
            except OSError:
                entry[field] = ""
        devices.append(entry)
    return devices


def main():
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
            "sysfs_pci": {"type": "path", "default": "/sys/bus/pci/devices"},
        },
        supports_check_mode=True,
    )
    pci_gpus = parse_pci_devices(read_sysfs_pci(module.params["sysfs_pci"]))
    smi_path = module.get_bin_path(module.params["nvidia_smi"])
    smi = {"found": smi_path is not None, "rc": None, "error": None}
    gpus = []
    if smi_path:
        query = f"--query-gpu={','.join(QUERY_FIELDS)}"
        rc, out, err = module.run_command([smi_path, query, "--format=csv,noheader,nounits"])
        smi["rc"] = rc
        if rc == 0:
            try:
                gpus = parse_query_gpu(out)
            except ValueError as exc:
                module.fail_json(msg=str(exc), stdout=out)
        else:
            smi["error"] = parse_smi_error(out or err)
    module_version = None
    try:
        with open("/proc/driver/nvidia/version") as handle:
            module_version = parse_driver_version_file(handle.read())
    except OSError:
        pass
    module.exit_json(changed=False, **summarize(pci_gpus, smi, gpus, module_version))


if __name__ == "__main__":
    main()
