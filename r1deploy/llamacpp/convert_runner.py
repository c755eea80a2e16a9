"""Runs llama.cpp's convert_hf_to_gguf.py (from the pinned source) in a Python that has
torch, transformers and safetensors; started as a script by r1deploy.llamacpp.convert.

Standard library only at the top: the Python that runs it need not have r1deploy.

Usage: python convert_runner.py LLAMA_CPP_SOURCE_DIR [convert_hf_to_gguf.py arguments...]

One addition to the script: it names a BPE tokenizer's pre-tokenizer by the hash of how it
splits a test string, and refuses a tokenizer it has never seen (r1deploy's test model's is
trained locally). When the tokenizer.json splits with exactly the pattern one of llama.cpp's
pre-tokenizers implements, that pre-tokenizer is the same, and is used.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

# tokenizer.json's Split pattern -> the llama.cpp pre-tokenizer that implements it
# (src/llama-vocab.cpp quotes the original pattern next to its own).
KNOWN_SPLIT_PATTERNS = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}


def split_pattern(model_dir: Path) -> str | None:
    """The regex of the first Split step of tokenizer.json's pre-tokenizer, if any."""
    try:
        pre = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))[
            "pre_tokenizer"
        ]
    except (OSError, ValueError, KeyError):
        return None
    steps = pre.get("pretokenizers", [pre]) if isinstance(pre, dict) else []
    for step in steps:
        if step.get("type") == "Split":
            return (step.get("pattern") or {}).get("Regex")
    return None


def main(argv: list[str]) -> None:
    source = Path(argv[0]).resolve()
    script_args = argv[1:]
    model_dir = Path(next(a for a in script_args if not a.startswith("-")))
    sys.path[:0] = [str(source), str(source / "gguf-py")]
    os.environ.pop("NO_LOCAL_GGUF", None)  # the gguf-py the script was released with

    from conversion import base  # noqa: PLC0415 - only on the path from here on

    fallback = KNOWN_SPLIT_PATTERNS.get(split_pattern(model_dir) or "")
    known = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer):
        try:
            return known(self, tokenizer)
        except NotImplementedError:
            if fallback is None:
                raise
            print(
                f"convert: tokenizer not known by hash; its split pattern is {fallback}'s",
                file=sys.stderr,
            )
            return fallback

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    sys.argv = [str(source / "convert_hf_to_gguf.py"), *script_args]
    runpy.run_path(str(source / "convert_hf_to_gguf.py"), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
