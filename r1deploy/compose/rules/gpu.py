"""GPU reservations: complete requests (capabilities, count or device_ids, CDI names), and
vLLM reserving a GPU, as many as its tensor parallel size."""

from __future__ import annotations

import re

from r1deploy.compose.registry import RULES
from r1deploy.compose.services import ComposeFile, argv, gpu_reservations, is_vllm, options
from r1deploy.diagnostics import Findings

GPU_RESERVATION = RULES["gpu-reservation"]
CDI_NAME = re.compile(r"^[a-z0-9.-]+/[a-zA-Z0-9._-]+=[a-zA-Z0-9:._-]+$")


def check(compose: ComposeFile, found: Findings) -> None:
    for name, service in compose.services.items():
        reserved: int | None = 0  # GPUs reserved; None = all of them
        for device, path in gpu_reservations(service):
            where = ("services", name) + path
            driver = device.get("driver", "nvidia")
            capabilities = device.get("capabilities") or []
            if driver == "cdi":
                if "count" in device:
                    found.add(
                        where + ("count",),
                        GPU_RESERVATION,
                        f"service {name}: a CDI device request takes device_ids, not count",
                        "remove count and list CDI names, e.g. device_ids: [nvidia.com/gpu=all]",
                    )
                ids = device.get("device_ids") or []
                bad = [i for i in ids if not CDI_NAME.match(str(i))]
                if not ids or bad:
                    found.add(
                        where + ("device_ids",),
                        GPU_RESERVATION,
                        f"service {name}: CDI device_ids must be fully qualified CDI names, "
                        f"got {ids}",
                        "use names like nvidia.com/gpu=0 or nvidia.com/gpu=all "
                        "(nvidia-ctk cdi list shows them)",
                    )
                else:
                    reserved = (
                        None
                        if any(str(i).endswith("=all") for i in ids)
                        else (reserved or 0) + len(ids)
                    )
                continue
            if driver != "nvidia":
                continue
            if "gpu" not in capabilities:
                found.add(
                    where + ("capabilities",),
                    GPU_RESERVATION,
                    f"service {name}: the GPU reservation lacks capabilities [gpu]; "
                    "Docker then selects no GPU",
                    "add capabilities: [gpu] to the device request",
                )
            if "count" in device and "device_ids" in device:
                found.add(
                    where,
                    GPU_RESERVATION,
                    f"service {name}: count and device_ids are mutually exclusive",
                    "keep device_ids to pin GPUs, or count to take any N",
                )
                continue
            count = device.get("count")
            if "device_ids" in device:
                ids = device.get("device_ids") or []
                if not ids:
                    found.add(
                        where + ("device_ids",),
                        GPU_RESERVATION,
                        f"service {name}: device_ids is empty",
                        "list the GPU ids (nvidia-smi -L)",
                    )
                reserved = None if reserved is None else reserved + len(ids)
            elif count is None or count == "all":
                reserved = None
            elif isinstance(count, int) and count > 0:
                reserved = None if reserved is None else reserved + count
            elif not (isinstance(count, str) and "$" in count):
                found.add(
                    where + ("count",),
                    GPU_RESERVATION,
                    f"service {name}: GPU count {count!r} is neither a positive number nor 'all'",
                    "set count to the number of GPUs vLLM uses (tensor parallel size) or 'all'",
                )
        if is_vllm(service):
            _check_vllm_gpus(name, service, reserved, found)


def _check_vllm_gpus(name: str, service: dict, reserved: int | None, found: Findings) -> None:
    has_other = (
        "gpus" in service
        or service.get("runtime") == "nvidia"
        or any(CDI_NAME.match(str(d)) for d in service.get("devices") or [])
    )
    if not gpu_reservations(service) and not has_other:
        found.add(
            ("services", name),
            GPU_RESERVATION,
            f"service {name} runs vLLM but reserves no GPU",
            "add deploy.resources.reservations.devices: "
            "[{driver: nvidia, count: 1, capabilities: [gpu]}]",
        )
        return
    flags = options(argv(service))
    option = flags.get("--tensor-parallel-size") or flags.get("-tp")
    if option and option[0] and option[0].isdigit() and reserved is not None:
        tp = int(option[0])
        if reserved and reserved < tp:
            found.add(
                ("services", name) + option[1],
                GPU_RESERVATION,
                f"service {name}: tensor parallel size {tp} needs {tp} GPUs but only "
                f"{reserved} are reserved",
                f"reserve {tp} GPUs (count: {tp} or {tp} device_ids) or lower "
                "--tensor-parallel-size",
            )
