"""Each role's meta/argument_specs.yml and defaults/main.yml say the same thing.

- every variable of defaults/main.yml is an option of some entry point of the spec;
- every option of the spec is set in defaults/main.yml, unless it is ``required``;
- where an option gives ``default:``, it equals the value in defaults/main.yml, compared as
  parsed YAML (a Jinja expression there is a string, compared as the string).

Ansible never applies a spec's ``default`` to a role variable (the role's defaults win), so a
wrong one lies only to the reader of ``ansible-doc`` and of the spec, silently: this check is
what keeps it true. prometheus-community/ansible checks the names; this checks values too.

    python -m tests.lint.argspecs [ROLES_DIR]     # exit 0 agree, 1 drift found, 2 cannot read
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Drift:
    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.message}"


def _key_lines(path: Path, depth: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key, by its path of keys."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[path + (key.value,)] = key.start_mark.line + 1
                walk(value, path + (key.value,))

    root = yaml.compose(path.read_text(encoding="utf-8"))
    if root is not None:
        walk(root, depth)
    return lines


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def check_role(role: Path) -> list[Drift]:
    """What disagrees between one role's defaults and argument specs (nothing: [])."""
    defaults_file = role / "defaults" / "main.yml"
    specs_file = role / "meta" / "argument_specs.yml"
    if not defaults_file.is_file() and not specs_file.is_file():
        return []
    defaults = _load(defaults_file) if defaults_file.is_file() else {}
    entry_points = (_load(specs_file).get("argument_specs") or {}) if specs_file.is_file() else {}
    default_lines = _key_lines(defaults_file) if defaults_file.is_file() else {}
    spec_lines = _key_lines(specs_file) if specs_file.is_file() else {}

    options: dict[str, list[tuple[str, dict]]] = {}
    for entry, spec in entry_points.items():
        for name, option in ((spec or {}).get("options") or {}).items():
            options.setdefault(name, []).append((entry, option or {}))

    found: list[Drift] = []
    for name in defaults:
        if name not in options:
            found.append(
                Drift(
                    defaults_file,
                    default_lines.get((name,)),
                    f"{name} is set here but no entry point of {specs_file.name} "
                    f"declares it. Fix: add it under argument_specs.main.options "
                    "with its type and description",
                )
            )
    for name, declared in options.items():
        for entry, option in declared:
            line = spec_lines.get(("argument_specs", entry, "options", name))
            if name not in defaults:
                if not option.get("required"):
                    found.append(
                        Drift(
                            specs_file,
                            line,
                            f"{name} (entry point {entry}) is not set in "
                            "defaults/main.yml. Fix: give it its default there, "
                            "mark it required: true, or remove it from the spec",
                        )
                    )
                continue
            if "default" in option and option["default"] != defaults[name]:
                found.append(
                    Drift(
                        specs_file,
                        line,
                        f"{name} (entry point {entry}): the spec says default "
                        f"{option['default']!r} but defaults/main.yml sets "
                        f"{defaults[name]!r}. Fix: write the defaults file's value "
                        "in the spec (defaults/main.yml is what Ansible uses)",
                    )
                )
    return found


def check_roles(roles_dir: Path) -> list[Drift]:
    return [
        d for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()) for d in check_role(role)
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    roles_dir = Path(args[0]) if args else ROOT / "roles"
    try:
        found = check_roles(roles_dir)
    except (OSError, yaml.YAMLError) as exc:
        print(f"argspecs: cannot read {roles_dir}: {exc}", file=sys.stderr)
        return 2
    for drift in found:
        print(drift)
    roles = sum(1 for p in roles_dir.iterdir() if p.is_dir())
    print(
        f"argspecs: {roles} roles, {len(found)} disagreements between defaults/main.yml "
        "and meta/argument_specs.yml"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
