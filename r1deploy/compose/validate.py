"""Validate an r1deploy compose file: the Compose specification, then this stack's rules.

The schema is the Compose specification's JSON schema as vendored by check-jsonschema
(``vendor.compose-spec``). The semantic rules encode what makes this stack work:
pinned images, complete GPU reservations, Open WebUI wired to the model server, vLLM
flags that fit the model, no secrets in the file, and no model API on a public address.
Every finding is a :class:`~r1deploy.diagnostics.Diagnostic` with a JSON pointer, the line,
what is wrong and the fix, and names a rule of r1deploy/compose/registry.py.

Layout: services.py reads services (command, flags, environment, ports, which server);
rules/ holds one module a rule family; this module is the entry points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from r1deploy.compose.registry import RULES
from r1deploy.compose.rules import exposure, gpu, images, schema, secrets, vllm, webui
from r1deploy.compose.services import ComposeFile
from r1deploy.compose.source import YAML_SYNTAX, YamlSyntaxError, load_yaml
from r1deploy.diagnostics import Diagnostic, Findings, errors
from r1deploy.inputfile import InputRefused, read_text
from r1deploy.stackdir import parse_env

# The rule families that judge services, in the order their findings are listed.
SERVICE_CHECKS = (images.check, gpu.check, vllm.check, webui.check, secrets.check, exposure.check)


@dataclass
class Report:
    path: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not errors(self.diagnostics)

    def to_dict(self) -> dict:
        found = self.diagnostics
        return {
            "valid": self.valid,
            "files": [self.path],
            "errors": len(errors(found)),
            "warnings": len(found) - len(errors(found)),
            "diagnostics": [d.to_dict() for d in found],
        }


def validate_text(
    text: str, path: str = "compose.yaml", env: dict[str, str] | None = None
) -> Report:
    """Check compose ``text``; ``env`` is the sibling .env, whose secrets must not leak."""
    report = Report(path)
    try:
        source = load_yaml(text)
    except YamlSyntaxError as exc:
        message = f"invalid YAML: {exc}" if exc.rule == YAML_SYNTAX.id else str(exc)
        report.diagnostics.append(
            Diagnostic(path, "", exc.rule, message, exc.fix, "error", exc.line, exc.column)
        )
        return report
    found = Findings(path, source, RULES)
    schema.duplicate_keys(source, found)
    compose = ComposeFile(source.document, text, env or {})
    schema.check(compose, found)
    if compose.services is not None:
        for check in SERVICE_CHECKS:
            check(compose, found)
    report.diagnostics = found.items
    return report


def validate_file(path: str | Path) -> Report:
    """Check a compose file, with the .env next to it when there is one.

    Raises OSError when the file cannot be opened; a FIFO, a device, a file over
    MAX_INPUT_BYTES or one that is not UTF-8 is reported as a finding, and so is a
    .env that cannot be read as text.
    """
    path = Path(path)
    try:
        text = read_text(path)
    except InputRefused as exc:
        return Report(str(path), [exc.diagnostic(str(path))])
    env_file, env, unread = path.parent / ".env", {}, []
    if env_file.is_file():
        try:
            env = parse_env(read_text(env_file))
        except InputRefused as exc:
            # Without it the secret-literal rule cannot check anything.
            unread = [exc.diagnostic(str(env_file))]
    report = validate_text(text, str(path), env)
    report.diagnostics[:0] = unread
    return report
