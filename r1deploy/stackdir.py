"""Read a rendered stack directory (docs/stack-dir.md): settings.json, .env, tools files.

Python keeps no second copy of a default: every value comes from what the role rendered.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines as Compose reads them (comments, quotes, ``export``); a missing
    file reads as empty. The one .env reader of the package."""
    if not path.is_file():
        return {}
    return parse_env(path.read_text(encoding="utf-8"))


def parse_env(text: str) -> dict[str, str]:
    """The ``KEY=value`` lines of a .env file's text (see read_env_file)."""
    return {k: v or "" for k, v in dotenv_values(stream=io.StringIO(text)).items()}


class StackDirError(ValueError):
    """The stack directory lacks a file or a value (names which, and how to get it)."""


@dataclass(frozen=True)
class StackDir:
    path: Path
    settings: dict
    env: dict[str, str]

    @classmethod
    def load(cls, path: str | Path) -> StackDir:
        root = Path(path)
        settings_file = root / "settings.json"
        try:
            settings = json.loads(settings_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StackDirError(
                f"{settings_file} does not exist: render the stack first (make render, or "
                "the r1_stack role) and pass its directory"
            ) from None
        except ValueError as exc:
            raise StackDirError(f"{settings_file} is not JSON: {exc}") from None
        return cls(root, settings, read_env_file(root / ".env"))

    def setting(self, *keys: str):
        """settings.json value at keys, or StackDirError naming the JSON pointer."""
        value: object = self.settings
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                pointer = "/" + "/".join(keys)
                raise StackDirError(
                    f"{self.path / 'settings.json'}: {pointer} is missing; render the stack "
                    "again with the current role"
                )
            value = value[key]
        return value

    def secret(self, name: str) -> str:
        """A value from .env, or StackDirError naming the variable."""
        value = self.env.get(name, "")
        if not value:
            raise StackDirError(
                f"{self.path / '.env'}: {name} is missing or empty; render the stack again "
                "(secrets are generated once and kept under secrets/<host>/)"
            )
        return value

    def file(self, settings_key: str, default_name: str) -> Path:
        return self.path / str(self.settings.get(settings_key, default_name))
