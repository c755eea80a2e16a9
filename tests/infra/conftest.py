"""testinfra checks for provisioned hosts; run by ops against their own inventory:

    pytest tests/infra --hosts='ansible://GROUP' --ansible-inventory=INVENTORY

The stack directory comes from the host's r1_stack_dir (default /opt/r1deploy).
"""

from __future__ import annotations

import json

import pytest

DEFAULT_STACK_DIR = "/opt/r1deploy"


@pytest.fixture
def host_vars(host):
    return host.ansible.get_variables()


@pytest.fixture
def gpu(host):
    """Skips the test, with the reason, on a host without an NVIDIA GPU."""
    pci = host.run("grep -l 0x10de /sys/bus/pci/devices/*/vendor 2>/dev/null")
    smi = host.run("nvidia-smi -L")
    if not pci.stdout.strip() and smi.rc != 0:
        pytest.skip(
            f"no NVIDIA GPU on {host.backend.get_hostname()} (no PCI vendor 0x10de, "
            "nvidia-smi absent or failing): GPU checks do not apply"
        )
    return smi


@pytest.fixture
def stack_dir(host, host_vars):
    path = host_vars.get("r1_stack_dir", DEFAULT_STACK_DIR)
    if not host.file(f"{path}/compose.yaml").exists:
        pytest.skip(
            f"no stack deployed on {host.backend.get_hostname()} ({path}/compose.yaml "
            "absent): stack checks do not apply"
        )
    return path


@pytest.fixture
def stack_settings(host, stack_dir):
    return json.loads(host.file(f"{stack_dir}/settings.json").content_string)
