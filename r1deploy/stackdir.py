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

    def front_door(self) -> FrontDoor | None:
        """How r1deploy's own clients (smoke, bench) reach the stack through its front door,
        from this host: None when the stack has none (settings.json /front_door/enabled).

        Raises StackDirError when it has one but no ``ops`` API key to use it with."""
        door = self.settings.get("front_door") or {}
        if not door.get("enabled"):
            return None
        key_env = door.get("ops_key_env")
        if not key_env or not self.env.get(key_env):
            raise StackDirError(
                f"{self.path / 'settings.json'}: the front door has no ops API key (its key "
                "for r1deploy's own smoke and bench)\n    fix: keep ops in r1_stack_api_keys "
                "(and render again), or give --inside to reach the services behind the "
                "front door"
            )
        # With the stack's own CA the certificate names this host too (loopback); another
        # certificate (provided, ACME) is checked at the name people use.
        ca_file = door.get("ca_file")
        own_ca = door.get("tls_mode", "internal_ca") == "internal_ca"
        return FrontDoor(
            url=(door["local_url"] if own_ca and ca_file else door["url"]).rstrip("/"),
            api_key=self.env[key_env],
            verify=str(self.path / ca_file) if ca_file else True,
            settings=door,
        )


@dataclass(frozen=True)
class FrontDoor:
    """The stack's front door as r1deploy reaches it (StackDir.front_door)."""

    url: str  # https root: Open WebUI at /, the OpenAI API at /v1/...
    api_key: str  # the ops application's key (API_KEY_OPS)
    verify: str | bool  # the stack's CA file to trust its certificate; True: the system's
    settings: dict  # settings.json /front_door as rendered
