"""`r1deploy smoke`: check a deployed stack the way its users use it, against the real
servers (vLLM, Open WebUI, the tool gateway). A library of named checks that return
structured results; the CLI prints them as a table, JSON or JUnit XML."""

from r1deploy.smoke.config import ConfigError, SmokeConfig, load_config
from r1deploy.smoke.runner import CheckResult, run_checks

__all__ = ["CheckResult", "ConfigError", "SmokeConfig", "load_config", "run_checks"]
