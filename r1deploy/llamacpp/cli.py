"""`r1deploy llamacpp build|convert|info`: llama.cpp for the cpu profile (docs/llamacpp.md).

r1deploy llamacpp build [--prefix DIR] [--no-copy] [--sdist FILE|URL] [--jobs N] [--format json]
r1deploy llamacpp convert MODEL_DIR OUT.gguf [--quant Q4_K_M] [--prefix DIR] [--python PY]
r1deploy llamacpp info [--under DIR] [--format json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from r1deploy.cliconv import ExitCode, add_format


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "llamacpp", help="build llama-server from the pinned source; convert a model to GGUF"
    )
    verbs = parser.add_subparsers(dest="llamacpp_command", metavar="VERB", required=True)

    build = verbs.add_parser("build", help="build (or reuse) llama-server and llama-quantize")
    build.add_argument(
        "--prefix",
        metavar="DIR",
        help="install here (default: the cache, ~/.cache/r1deploy/"
        "llama.cpp-b<build>-<cpu variant>)",
    )
    build.add_argument(
        "--sdist",
        metavar="FILE|URL",
        help="the llama-cpp-python source archive (checked against the pinned "
        "sha256); default: the pinned PyPI URL",
    )
    build.add_argument("--jobs", type=int, help="parallel compile jobs (default: CPU count)")
    build.add_argument(
        "--no-copy",
        action="store_true",
        help="compile into --prefix even when the cache holds the same build (default: copy it)",
    )
    add_format(build)
    build.set_defaults(handler=run_build)

    convert = verbs.add_parser("convert", help="Hugging Face safetensors -> quantized GGUF")
    convert.add_argument(
        "model_dir", help="model directory (config.json, tokenizer, *.safetensors)"
    )
    convert.add_argument("out", help="the GGUF file to write (replaced atomically)")
    convert.add_argument(
        "--quant",
        default="Q4_K_M",
        help="llama-quantize type (default Q4_K_M); F16 keeps the conversion",
    )
    convert.add_argument(
        "--prefix", metavar="DIR", help="a built prefix (default: build or reuse the cached one)"
    )
    convert.add_argument(
        "--python",
        metavar="PY",
        help="a python with torch, transformers and safetensors (default: "
        "this one if it has them, else $R1DEPLOY_CONVERT_PYTHON, else "
        "the cached vLLM environment's)",
    )
    add_format(convert)
    convert.set_defaults(handler=run_convert)

    info = verbs.add_parser("info", help="the pin, this host's build variant and cache prefix")
    info.add_argument(
        "--under",
        metavar="DIR",
        help="report on the prefix of that name under DIR (the native runtime's, "
        "<stack>/venvs): its path and whether it is complete",
    )
    add_format(info)
    info.set_defaults(handler=run_info)


def _fail(exc: Exception) -> int:
    print(f"r1deploy llamacpp: {exc}", file=sys.stderr)
    return ExitCode.CANNOT_RUN


def _print(data: dict, fmt: str, text: str) -> None:
    print(json.dumps(data, indent=2) if fmt == "json" else text)


def run_build(args) -> int:
    from r1deploy.llamacpp.build import BuildError, as_dict, build
    from r1deploy.llamacpp.cpu import UnsupportedCPU
    from r1deploy.llamacpp.source import SourceError

    try:
        built = build(
            Path(args.prefix) if args.prefix else None,
            sdist=args.sdist,
            jobs=args.jobs,
            from_cache=not args.no_copy,
        )
    except (BuildError, SourceError, UnsupportedCPU, OSError) as exc:
        return _fail(exc)
    if built.reused:
        how = "reused"
    elif built.copied_from:
        how = f"copied from {built.copied_from} in {built.seconds:.1f} s"
    else:
        how = f"built in {built.seconds:.0f} s"
    _print(
        as_dict(built),
        args.format,
        f"llama-server {built.build_info} ({built.variant}) {how}: {built.llama_server}",
    )
    return ExitCode.OK


def run_convert(args) -> int:
    from r1deploy.llamacpp.build import BuildError, build
    from r1deploy.llamacpp.convert import ConvertError, convert
    from r1deploy.llamacpp.cpu import UnsupportedCPU
    from r1deploy.llamacpp.source import SourceError

    try:
        built = build(Path(args.prefix) if args.prefix else None)
        result = convert(
            Path(args.model_dir), Path(args.out), args.quant, built, python=args.python
        )
    except (BuildError, ConvertError, SourceError, UnsupportedCPU, OSError) as exc:
        return _fail(exc)
    _print(
        result,
        args.format,
        f"{result['out']}: {result['quant']} ({result['bytes']:,} bytes, "
        f"sha256 {result['sha256']})" + "".join(f"\n  note: {n}" for n in result["notes"]),
    )
    return ExitCode.OK


def run_info(args) -> int:
    from r1deploy.llamacpp.build import cmake_options, default_prefix, is_complete
    from r1deploy.llamacpp.cpu import UnsupportedCPU, host_variant
    from r1deploy.llamacpp.pins import load

    pins = load()
    try:
        variant = host_variant()
    except UnsupportedCPU as exc:
        return _fail(exc)
    cached = default_prefix(pins, variant)
    prefix = Path(args.under) / cached.name if args.under else cached
    data = {
        "source": pins.file,
        "sha256": pins.sha256,
        "build_info": pins.build_info,
        "image": pins.image,
        "variant": variant.name,
        "variant_why": variant.why,
        "prefix": str(prefix),
        "complete": is_complete(prefix, pins, variant),
        "cache_prefix": str(cached),
        "cache_complete": is_complete(cached, pins, variant),
        "cmake": cmake_options(pins, variant),
    }
    _print(data, args.format, "\n".join(f"{k}: {v}" for k, v in data.items()))
    return ExitCode.OK
