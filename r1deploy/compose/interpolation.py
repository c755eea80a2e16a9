"""Compose's variable interpolation: ``$$``, ``${NAME}``, ``${NAME:?err}``, ``${NAME?err}``,
``${NAME:-default}``, ``${NAME-default}``, ``$NAME``, filled from a .env dict as docker
compose fills them. One implementation for reconcile (Open WebUI's desired environment) and
the compose validator (the address a port is really published on)."""

from __future__ import annotations

import re

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(ValueError):
    """A ``${NAME?err}`` / ``${NAME:?err}`` whose variable is not set."""


def interpolate(value: str, env: dict[str, str], where: str = "") -> str:
    """``value`` with every reference filled from ``env`` (unset: empty, or the default)."""

    def replace(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op") or "", match.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if unset and op.endswith("-"):
            return arg
        if unset and op.endswith("?"):
            raise MissingVariable(f"{where}: {name} is missing from .env ({arg})")
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def references(value: str) -> list[str]:
    """The variable names ``value`` refers to."""
    return [
        m.group("braced") or m.group("bare")
        for m in _INTERPOLATION.finditer(value)
        if not m.group("escaped")
    ]
