"""r1deploy: deploy DeepSeek-R1-Distill-Qwen-1.5B on vLLM behind Open WebUI."""

__version__ = "0.1.0"
