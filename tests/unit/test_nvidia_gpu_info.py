"""Parsing of nvidia-smi output, /proc/driver/nvidia/version and sysfs PCI devices.

The samples under data/nvidia_smi/ are in the exact shapes the real tools print.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "nvidia_smi"
_spec = importlib.util.spec_from_file_location(
    "nvidia_gpu_info", REPO / "roles/preflight/library/nvidia_gpu_info.py"
)
gpu_info = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_info)


def sample(name: str) -> str:
    return (DATA / name).read_text()


def test_two_h100_are_parsed_with_memory_driver_and_bus_id():
    gpus = gpu_info.parse_query_gpu(sample("query_h100x2.csv"))
    assert [g["index"] for g in gpus] == [0, 1]
    assert gpus[0] == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "memory_total_mib": 81559,
        "driver_version": "550.54.15",
        "pci_bus_id": "00000000:18:00.0",
    }
    assert gpus[1]["pci_bus_id"] == "00000000:2A:00.0"


def test_memory_reported_as_not_available_becomes_none():
    (gpu,) = gpu_info.parse_query_gpu(sample("query_memory_na.csv"))
    assert gpu["memory_total_mib"] is None
    assert gpu["driver_version"] == "535.104.05"


def test_memory_with_unit_suffix_is_read_as_mib():
    (gpu,) = gpu_info.parse_query_gpu("0, Tesla T4, 15360 MiB, 535.104.05, 00000000:00:1E.0\n")
    assert gpu["memory_total_mib"] == 15360


def test_wrong_field_count_is_an_error_that_shows_the_line():
    with pytest.raises(ValueError, match="2 fields where 5"):
        gpu_info.parse_query_gpu("0, Tesla T4\n")


def test_empty_output_means_no_gpus():
    assert gpu_info.parse_query_gpu("\n") == []


@pytest.mark.parametrize(
    ("name", "version"),
    [("proc_version_proprietary.txt", "535.261.03"), ("proc_version_open.txt", "550.54.14")],
)
def test_loaded_module_version_is_read_from_proc(name, version):
    assert gpu_info.parse_driver_version_file(sample(name)) == version


def test_proc_version_without_nvrm_line_gives_none():
    assert gpu_info.parse_driver_version_file("GCC version: 12\n") is None


@pytest.mark.parametrize(
    ("name", "starts"),
    [
        ("error_no_driver.txt", "NVIDIA-SMI has failed because it couldn't communicate"),
        ("error_no_devices.txt", "No devices were found"),
    ],
)
def test_smi_failure_is_reduced_to_its_first_line(name, starts):
    assert gpu_info.parse_smi_error(sample(name)).startswith(starts)
    assert "\n" not in gpu_info.parse_smi_error(sample(name))


def test_only_nvidia_display_devices_count_as_gpus():
    devices = [
        {"slot": "0000:18:00.0", "vendor": "0x10de\n", "device": "0x2330\n", "class": "0x030200\n"},
        # NVIDIA's audio function on a consumer card: same vendor, not a GPU.
        {"slot": "0000:01:00.1", "vendor": "0x10de\n", "device": "0x228e\n", "class": "0x040300\n"},
        {"slot": "0000:00:02.0", "vendor": "0x8086\n", "device": "0x1234\n", "class": "0x030000\n"},
        {"slot": "0000:01:00.0", "vendor": "0x10de\n", "device": "0x2504\n", "class": "0x030000\n"},
    ]
    found = gpu_info.parse_pci_devices(devices)
    assert [d["slot"] for d in found] == ["0000:18:00.0", "0000:01:00.0"]
    assert found[0]["device_id"] == "0x2330"


def test_summary_of_a_host_without_gpu():
    smi = {"found": False, "rc": None, "error": None}
    summary = gpu_info.summarize([], smi, [], None)
    assert summary["gpu_present"] is False
    assert summary["min_memory_mib"] is None
    assert summary["driver_version"] is None
    assert summary["driver_loaded"] is False


def test_summary_takes_the_smallest_gpu_memory():
    gpus = gpu_info.parse_query_gpu(sample("query_h100x2.csv") + sample("query_gt1030.csv"))
    summary = gpu_info.summarize([], {"found": True, "rc": 0, "error": None}, gpus, "550.54.15")
    assert summary["gpu_present"] is True
    assert summary["min_memory_mib"] == 2048
    assert summary["driver_version"] == "550.54.15"


def test_summary_of_gpu_seen_on_pci_before_any_driver():
    pci = [{"slot": "0000:01:00.0", "device_id": "0x2504", "class": "0x030000"}]
    smi = {"found": False, "rc": None, "error": None}
    summary = gpu_info.summarize(pci, smi, [], None)
    assert summary["gpu_present"] is True
    assert summary["min_memory_mib"] is None  # unknown until the driver answers


def test_module_reads_a_sysfs_tree(tmp_path):
    dev = tmp_path / "0000:01:00.0"
    dev.mkdir()
    (dev / "vendor").write_text("0x10de\n")
    (dev / "device").write_text("0x2504\n")
    (dev / "class").write_text("0x030000\n")
    (tmp_path / "0000:00:00.0").mkdir()  # a device whose files cannot be read
    devices = gpu_info.read_sysfs_pci(str(tmp_path))
    assert [d["slot"] for d in gpu_info.parse_pci_devices(devices)] == ["0000:01:00.0"]
