"""vLLM's router (PyPI ``vllm-router``, vllm-project/router) in front of several vLLM
replicas: the command line that runs it (docs/scale-out.md)."""

from r1deploy.router.command import (
    DEFAULT_POLICY,
    POLICIES,
    RouterConfigError,
    RouterSettings,
    router_command,
)

__all__ = ["DEFAULT_POLICY", "POLICIES", "RouterConfigError", "RouterSettings", "router_command"]
