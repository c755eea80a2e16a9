"""Single-stream decode ceiling: each generated token reads every weight once, so a GPU cannot
decode one stream faster than memory bandwidth / weight bytes. The one table of GPU bandwidths."""

from __future__ import annotations

import shutil
import subprocess

# DeepSeek-R1-Distill-Qwen-1.5B in bf16: ~3.09 GB of weights read per generated token.
WEIGHT_BYTES_PER_TOKEN = 3.09e9
ROOFLINE_MODEL = "DeepSeek-R1-Distill-Qwen-1.5B"

# Memory bandwidth in bytes/s, by the name `--gpu` takes; `match` picks it from nvidia-smi names.
GPU_BANDWIDTH = {
    "H100-SXM": {"bytes_per_s": 3.35e12, "match": ("H100 80GB HBM3", "H100 SXM")},
    "H200": {"bytes_per_s": 4.8e12, "match": ("H200",)},
    "A100-80GB": {"bytes_per_s": 2.04e12, "match": ("A100-SXM4-80GB", "A100 80GB")},
    "RTX-4090": {"bytes_per_s": 1.008e12, "match": ("RTX 4090",)},
    "RTX-3060-12GB": {"bytes_per_s": 0.36e12, "match": ("RTX 3060",)},
}


def detect_gpu() -> str | None:
    """The first local GPU's name from nvidia-smi, or None without one."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return names[0] if names else None


def gpu_key(name: str) -> str | None:
    """The table key for a `--gpu` value or an nvidia-smi name; None when not in the table."""
    if name in GPU_BANDWIDTH:
        return name
    lowered = name.lower()
    for key, entry in GPU_BANDWIDTH.items():
        if key.lower() == lowered or any(m.lower() in lowered for m in entry["match"]):
            return key
    return None


def ceiling_tokens_per_s(key: str) -> float:
    return GPU_BANDWIDTH[key]["bytes_per_s"] / WEIGHT_BYTES_PER_TOKEN


def roofline(
    gpu_name: str | None, single_stream_tpot_ms: float | None, model_root: str | None, source: str
) -> dict | None:
    """The ceiling for the named GPU and the measured fraction of it (1000 / median TPOT at
    concurrency 1); None when no GPU is known."""
    if not gpu_name:
        return None
    key = gpu_key(gpu_name)
    if key is None:
        return {
            "gpu": gpu_name,
            "source": source,
            "known": False,
            "note": f"not in the bandwidth table; use --gpu with one of {', '.join(GPU_BANDWIDTH)}",
        }
    ceiling = ceiling_tokens_per_s(key)
    measured = 1000.0 / single_stream_tpot_ms if single_stream_tpot_ms else None
    note = None
    if model_root and ROOFLINE_MODEL.lower() not in model_root.lower():
        note = f"the ceiling is for {ROOFLINE_MODEL}; the server runs {model_root}"
    if measured is None:
        note = (note + "; " if note else "") + "no concurrency-1 level, no fraction measured"
    return {
        "gpu": key,
        "gpu_name": gpu_name,
        "source": source,
        "known": True,
        "bandwidth_tb_per_s": GPU_BANDWIDTH[key]["bytes_per_s"] / 1e12,
        "weight_gb_per_token": WEIGHT_BYTES_PER_TOKEN / 1e9,
        "ceiling_tokens_per_s": ceiling,
        "measured_tokens_per_s": measured,
        "fraction": measured / ceiling if measured else None,
        "note": note,
    }
