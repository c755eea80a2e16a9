"""The validators' rule registries (COMPOSE_RULES, TOOLS_RULES) and what the validators emit:
every id a finding carries is an entry, every entry can fire (one case each, below), with its
default severity; no rule id is written as a string where a finding is made."""

from __future__ import annotations

import ast
import copy
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from r1deploy.compose.registry import COMPOSE_RULES
from r1deploy.compose.validate import validate_file, validate_text
from r1deploy.diagnostics import Diagnostic, Findings, SourceMap
from r1deploy.doclimits import MAX_NESTING_DEPTH
from r1deploy.inputfile import MAX_INPUT_BYTES
from r1deploy.rules import Rule, index
from r1deploy.tools import validate_files
from r1deploy.tools.registry import RULES as TOOLS_BY_ID
from r1deploy.tools.registry import TOOLS_RULES
from r1deploy.tools.rules.schema import file_schema
from tests.unit.test_compose_validate import GOOD
from tests.unit.test_tools_validate import VALID

ROOT = Path(__file__).resolve().parents[2]
Case = Callable[[Path], list[Diagnostic]]


# --- a case per rule: the input that makes it fire ---------------------------------------


def input_cases(validate: Callable[[Path], list[Diagnostic]]) -> dict[str, Case]:
    def not_a_file(tmp: Path):
        os.mkfifo(tmp / "fifo")
        return validate(tmp / "fifo")

    def too_large(tmp: Path):
        (tmp / "big").write_bytes(b" " * (MAX_INPUT_BYTES + 1))
        return validate(tmp / "big")

    def not_utf8(tmp: Path):
        (tmp / "latin1").write_bytes("caf\xe9: 1\n".encode("latin-1"))
        return validate(tmp / "latin1")

    return {
        "input-not-a-file": not_a_file,
        "input-too-large": too_large,
        "input-encoding": not_utf8,
    }


def compose(mutate=None, text=None, env=None) -> Case:
    def case(tmp: Path) -> list[Diagnostic]:
        document = copy.deepcopy(GOOD)
        if mutate:
            mutate(document)
        body = text if text is not None else yaml.safe_dump(document, sort_keys=False)
        return validate_text(body, "compose.yaml", env).diagnostics

    return case


def vllm(d: dict) -> dict:
    return d["services"]["vllm"]


def webui(d: dict) -> dict:
    return d["services"]["open-webui"]


def tp_five(d: dict) -> None:
    command = vllm(d)["command"]
    command[command.index("--tensor-parallel-size") + 1] = "5"
    vllm(d)["deploy"]["resources"]["reservations"]["devices"][0]["count"] = "all"


COMPOSE_CASES: dict[str, Case] = {
    **input_cases(lambda path: validate_file(path).diagnostics),
    "yaml-syntax": compose(text="services:\n  vllm:\n    image: [a\n"),
    "yaml-limit": compose(
        text="x: " + "[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1) + "\n"
    ),
    "duplicate-key": compose(text="services:\n  a:\n    image: x:1\n    image: x:2\n"),
    "compose-schema": compose(lambda d: vllm(d).update(imagee="x")),
    "image-pinned": compose(lambda d: vllm(d).update(image="vllm/vllm-openai")),
    "gpu-reservation": compose(
        lambda d: vllm(d)["deploy"]["resources"]["reservations"]["devices"][0].pop("capabilities")
    ),
    "vllm-flags": compose(tp_five),
    "webui-env": compose(
        lambda d: webui(d)["environment"].update(OPENAI_BASE_URL="http://vllm:8000/v1")
    ),
    "webui-backend": compose(
        lambda d: webui(d)["environment"].update(OPENAI_API_BASE_URL="http://vllm:8000")
    ),
    "webui-depends": compose(lambda d: webui(d).pop("depends_on")),
    "secret-literal": compose(
        lambda d: webui(d)["environment"].update(WEBUI_SECRET_KEY="a-literal-secret")
    ),
    "public-port": compose(lambda d: vllm(d).update(ports=["0.0.0.0:8000:8000"])),
    "front-door-only": compose(
        lambda d: d["services"].update(
            {"front-door": {"image": "nginx:1.22.1", "ports": ["0.0.0.0:443:8443"]}}
        )
    ),
}


def tools(*plugins, text: str | None = None) -> Case:
    def case(tmp: Path) -> list[Diagnostic]:
        path = tmp / "tools.json"
        path.write_text(text if text is not None else json.dumps(list(plugins), indent=2))
        return validate_files([str(path)]).diagnostics

    return case


def plugin(**changes) -> dict:
    result = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            result.pop(key)
        else:
            result[key] = value
    return result


def params(**changes) -> dict:
    return {**VALID["params"], **changes}


POST = {"method": "POST", "url": "https://api.example.com/weather"}

TOOLS_CASES: dict[str, Case] = {
    **input_cases(lambda path: validate_files([str(path)]).diagnostics),
    "json-syntax": tools(text='[{"id": }]'),
    "json-limit": tools(text="[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1)),
    "unknown-key": tools(plugin(methd="GET")),
    "missing-key": tools(plugin(method=None)),
    "schema-type": tools(text="{}"),
    "schema-pattern": tools(plugin(id="Weather Tool")),
    "schema-enum": tools(plugin(method="get")),
    "schema-minLength": tools(plugin(description="")),
    "schema-minimum": tools(plugin(max_response_bytes=0)),
    "schema-exclusiveMinimum": tools(plugin(timeout_s=0)),
    "schema-maximum": tools(plugin(timeout_s=301)),
    "schema-oneOf": tools(plugin(headers={"X-Thing": 3})),
    "duplicate-key": tools(text=json.dumps([VALID])[:-2] + ', "id": "again"}]'),
    "number-not-finite": tools(text=json.dumps([plugin(timeout_s=float("nan"))])),
    "params-not-a-schema": tools(plugin(params=params(required="city"))),
    "params-not-object": tools(plugin(params={"type": "string"}, url="https://wttr.in/x")),
    "required-undeclared": tools(plugin(params=params(required=["city", "country"]))),
    "remote-ref": tools(
        plugin(params=params(properties={"city": {"$ref": "https://example.com/city.json"}}))
    ),
    "query-argument-not-scalar": tools(
        plugin(
            url="https://wttr.in/",
            params=params(properties={"city": {"type": "array", "description": "cities"}}),
        )
    ),
    "strict": tools(plugin(strict=True, params=params(additionalProperties=True))),
    "argument-undescribed": tools(plugin(params=params(properties={"city": {"type": "string"}}))),
    "url-invalid": tools(plugin(url="https://wttr.in:99999/{city}")),
    "url-not-absolute": tools(plugin(url="/weather/{city}")),
    "url-host-placeholder": tools(plugin(url="https://{city}.example.com/")),
    "url-bad-placeholder": tools(plugin(url="https://wttr.in/{city")),
    "url-placeholder-undeclared": tools(plugin(url="https://wttr.in/{town}")),
    "url-placeholder-optional": tools(plugin(params=params(required=[]))),
    "url-plain-http": tools(plugin(url="http://wttr.in/{city}")),
    "url-host-not-canonical": tools(plugin(url="https://127.1/{city}")),
    "secret-literal": tools(plugin(headers={"Authorization": "Bearer abc"}, **POST)),
    "duplicate-id": tools(VALID, plugin(name="get_weather_2")),
    "duplicate-name": tools(VALID, plugin(id="weather_tool_2")),
}

REGISTRIES = [("compose", COMPOSE_RULES, COMPOSE_CASES), ("tools", TOOLS_RULES, TOOLS_CASES)]
EVERY_RULE = [
    pytest.param(rules, cases, rule, id=f"{name}:{rule.id}")
    for name, rules, cases in REGISTRIES
    for rule in rules
]


@pytest.mark.parametrize(("registry", "cases", "rule"), EVERY_RULE)
def test_every_rule_of_the_registry_fires_with_its_default_severity(
    tmp_path, registry, cases, rule: Rule
):
    assert rule.id in cases, f"no case makes {rule.id} fire: add one to this file"
    fired = [d for d in cases[rule.id](tmp_path) if d.rule == rule.id]
    assert fired, f"the case for {rule.id} did not fire it"
    assert any(d.severity == rule.severity for d in fired), fired


@pytest.mark.parametrize(("name", "registry", "cases"), REGISTRIES, ids=["compose", "tools"])
def test_every_id_a_finding_carries_is_in_the_registry(tmp_path, name, registry, cases):
    ids = {r.id for r in registry}
    assert set(cases) == ids, "a case for a rule the registry does not declare"
    for rule_id, case in cases.items():
        work = tmp_path / rule_id
        work.mkdir()
        emitted = {d.rule for d in case(work)}
        assert emitted <= ids, f"{rule_id}'s case emitted undeclared {emitted - ids}"


def test_each_registry_declares_an_id_once_and_says_what_it_catches():
    for registry in (COMPOSE_RULES, TOOLS_RULES):
        index(registry)  # raises on a repeated id
        for rule in registry:
            assert rule.description and "\n" not in rule.description
            assert rule.severity in ("error", "warning")
            assert rule.family


def test_findings_refuse_a_rule_outside_their_registry():
    found = Findings("tools.json", SourceMap("[]"), TOOLS_BY_ID)
    with pytest.raises(ValueError, match="not an entry"):
        found.add((), Rule("made-up", "x", "y"), "message", "fix")
    with pytest.raises(ValueError, match="not an entry"):
        found.add((), Rule("strict", "params", "a lookalike, not the registry's entry"), "m", "f")


def _assertion_keywords(schema: object) -> set[str]:
    """Keywords of tools.schema.json that fail with their own name (schema-<keyword>)."""
    own = {
        "type",
        "pattern",
        "enum",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "oneOf",
        "anyOf",
        "const",
        "minItems",
        "maxItems",
        "uniqueItems",
        "multipleOf",
        "format",
        "not",
        "minProperties",
        "maxProperties",
        "dependentRequired",
    }
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in own:
                found.add(key)
            if key not in ("properties", "$defs", "patternProperties"):
                found |= _assertion_keywords(value)
            else:
                for sub in value.values():
                    found |= _assertion_keywords(sub)
    elif isinstance(schema, list):
        for item in schema:
            found |= _assertion_keywords(item)
    return found


def test_every_keyword_of_the_tools_format_has_its_schema_rule():
    keywords = _assertion_keywords(file_schema())
    assert keywords, "the walk found no keyword"
    missing = {f"schema-{k}" for k in keywords} - set(TOOLS_BY_ID)
    assert not missing, f"declare {sorted(missing)} in r1deploy/tools/registry.py"


VALIDATOR_SOURCES = sorted(
    [
        *(ROOT / "r1deploy/compose").rglob("*.py"),
        *(ROOT / "r1deploy/tools").rglob("*.py"),
        ROOT / "r1deploy/inputfile.py",
        ROOT / "r1deploy/diagnostics.py",
    ]
)


@pytest.mark.parametrize("path", VALIDATOR_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_rule_id_is_a_string_where_a_finding_is_made(path):
    """Findings name registry entries: found.add(..., RULE, ...), Diagnostic(..., RULE.id, ...)."""
    literal = (ast.Constant, ast.JoinedStr)
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        position = {
            "add": 1,
            "add_pointer": 1,
            "add_line": 0,
            "Diagnostic": 2,
            "InputRefused": 0,
        }.get(name)
        if position is None or len(node.args) <= position:
            continue
        argument = node.args[position]
        assert not isinstance(argument, literal), (
            f"{path.relative_to(ROOT)}:{node.lineno}: a rule id written as a string; "
            "name the registry's entry"
        )
