"""llama.cpp for the cpu profile: llama-server and llama-quantize built from the pinned source
archive (``pins.json``), cached by version; Hugging Face safetensors converted to GGUF and
quantized; the server's command line from a rendered stack (docs/llamacpp.md).
"""
