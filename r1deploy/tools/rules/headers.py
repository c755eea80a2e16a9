"""A plugin's ``headers``: credentials come from the environment, never the file."""

from __future__ import annotations

import re

from r1deploy.diagnostics import Findings
from r1deploy.tools.registry import RULES

SECRET_LITERAL = RULES["secret-literal"]
# Header names whose values are credentials: they must come from the environment.
SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|api[-_]?key|password", re.I)


def no_secret_literals_in_headers(path: tuple, plugin: dict, found: Findings) -> None:
    headers = plugin.get("headers")
    if not isinstance(headers, dict):
        return
    for name, value in headers.items():
        if isinstance(value, str) and SECRET_HEADER.search(name):
            env_name = re.sub(r"[^A-Z0-9]", "_", name.upper())
            found.add(
                path + ("headers", name),
                SECRET_LITERAL,
                f'header "{name}" carries a credential as a literal in the file',
                f'use {{"env": "{env_name}"}} and set {env_name} where the gateway runs',
            )
