"""Validate tools.json files: the shipped file-format schema, then semantic rules.

Every finding is a :class:`~r1deploy.diagnostics.Diagnostic` that names the
file, the JSON pointer and line, what is wrong and what to do, and a rule of
r1deploy/tools/registry.py. Layout: rules/ holds one module a rule family; this module is
the entry points and the rules that span files (unique ids and names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from r1deploy import doclimits
from r1deploy.diagnostics import Diagnostic, Findings, SourceMap, errors, json_pointer, load_json
from r1deploy.inputfile import InputRefused, read_text
from r1deploy.tools.registry import RULES
from r1deploy.tools.rules import PLUGIN_RULES, schema

DUPLICATE = {"id": RULES["duplicate-id"], "name": RULES["duplicate-name"]}


@dataclass
class FileResult:
    path: str
    plugins: list[dict] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    source: SourceMap | None = None


@dataclass
class Report:
    files: list[FileResult]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]

    @property
    def valid(self) -> bool:
        return not errors(self.diagnostics)

    @property
    def plugins(self) -> list[dict]:
        return [p for f in self.files for p in f.plugins]

    def to_dict(self) -> dict:
        found = self.diagnostics
        return {
            "valid": self.valid,
            "files": [f.path for f in self.files],
            "errors": len(errors(found)),
            "warnings": len(found) - len(errors(found)),
            "diagnostics": [d.to_dict() for d in found],
        }


def validate_text(path: str, text: str) -> FileResult:
    result = FileResult(path)
    document, source, syntax = load_json(path, text, max_values=doclimits.MAX_TOOLS_FILE_VALUES)
    if syntax:
        result.diagnostics = syntax
        return result
    result.source = source
    found = Findings(path, source, RULES)
    schema.check(document, found)
    if isinstance(document, list):
        for index, plugin in enumerate(document):
            if isinstance(plugin, dict):
                for rule in PLUGIN_RULES:
                    rule((index,), plugin, found)
        result.plugins = [p for p in document if isinstance(p, dict)]
    result.diagnostics = found.items
    return result


def _unique_across_files(results: list[FileResult]) -> None:
    for key in ("id", "name"):
        first_seen: dict[str, tuple[FileResult, str]] = {}
        for result in results:
            for index, plugin in enumerate(result.plugins):
                value = plugin.get(key)
                if not isinstance(value, str):
                    continue
                pointer = json_pointer((index, key))
                if value in first_seen:
                    first, first_pointer = first_seen[value]
                    first_line, _ = first.source.position(first_pointer)
                    line, column = result.source.position(pointer)
                    result.diagnostics.append(
                        Diagnostic(
                            result.path,
                            pointer,
                            DUPLICATE[key].id,
                            f'{key} "{value}" is already used at '
                            f"{first.path}:{first_line} ({first_pointer})",
                            f"give each plugin its own {key}",
                            "error",
                            line,
                            column,
                        )
                    )
                else:
                    first_seen[value] = (result, pointer)


def _validate_path(path: str) -> FileResult:
    try:
        text = read_text(path)
    except InputRefused as exc:
        return FileResult(path, diagnostics=[exc.diagnostic(path)])
    return validate_text(path, text)


def validate_files(paths: list[str]) -> Report:
    """Validate each file, then the rules that span them (unique ids and names).

    Raises OSError when a file cannot be opened: that is a usage problem, not a finding.
    A FIFO, a device, a file over MAX_INPUT_BYTES or one that is not UTF-8 is a finding.
    """
    results = [_validate_path(str(p)) for p in paths]
    _unique_across_files(results)
    for result in results:
        result.diagnostics.sort(key=lambda d: (d.line or 0, d.column or 0, d.pointer))
    return Report(results)


class ToolsFileError(ValueError):
    """A tools file that does not validate; carries the diagnostics."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__("\n".join(str(d) for d in errors(report.diagnostics)))


def load_plugins(*paths: str) -> list[dict]:
    """The plugins of valid tools files, or ToolsFileError naming every problem."""
    report = validate_files(list(paths))
    if not report.valid:
        raise ToolsFileError(report)
    return report.plugins
