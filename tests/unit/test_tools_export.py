"""The openai and openapi exports: shape, strictness, determinism, acceptance."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openai.types.chat import ChatCompletionToolParam, completion_create_params
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from pydantic import TypeAdapter

from r1deploy.cli import main
from r1deploy.tools import export, load_plugins, to_openai, to_openapi
from tests.unit.test_tools_validate import VALID

REPO = Path(__file__).resolve().parents[2]
SHIPPED = load_plugins(str(REPO / "tools.json"))


def test_openai_export_shape():
    (tool,) = to_openai([VALID])
    assert tool == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": VALID["params"],
            "strict": True,
        },
    }


def test_openai_export_marks_only_strict_compatible_tools_strict():
    optional = copy.deepcopy(VALID)
    optional["params"]["properties"]["units"] = {"type": "string"}
    told_not = dict(copy.deepcopy(VALID), strict=False)
    flags = [t["function"]["strict"] for t in to_openai([VALID, optional, told_not])]
    assert flags == [True, False, False]


def test_openai_export_is_accepted_by_the_openai_request_types():
    tools = to_openai(SHIPPED)
    TypeAdapter(list[ChatCompletionToolParam]).validate_python(tools, strict=True)
    # The whole request body as the client library types it.
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools}
    TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming).validate_python(
        request, strict=True
    )


def test_openai_types_reject_a_malformed_tool():
    # Guards the test above: the adapter really checks the shape.
    with pytest.raises(ValueError):
        TypeAdapter(list[ChatCompletionToolParam]).validate_python(
            [{"type": "function", "function": {"description": "no name"}}], strict=True
        )


def test_openapi_export_is_a_valid_openapi_31_document():
    document = to_openapi(SHIPPED, server_url="http://gateway:8090")
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "http://gateway:8090"}]
    operations = {p: ops["post"] for p, ops in document["paths"].items()}
    assert set(operations) == {f"/tools/{p['name']}" for p in SHIPPED}
    for plugin in SHIPPED:
        operation = operations[f"/tools/{plugin['name']}"]
        assert operation["operationId"] == plugin["name"]
        assert operation["x-r1deploy-tool-id"] == plugin["id"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == plugin["params"]
        Draft202012Validator.check_schema(schema)


def test_openapi_export_passes_the_openapi_31_spec_validator():
    validate(to_openapi(SHIPPED))  # raises on any violation of the OpenAPI 3.1 schema


def test_openapi_spec_validator_rejects_a_broken_document():
    # Guards the test above: the validator really checks the document.
    broken = to_openapi(SHIPPED)
    broken["paths"]["/tools/get_weather"]["post"]["requestBody"] = {"content": "json"}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_exports_are_deterministic_text():
    for fmt in ("openai", "openapi"):
        first = export(SHIPPED, fmt)
        assert first == export(copy.deepcopy(SHIPPED), fmt)
        assert first.endswith("}\n") or first.endswith("]\n")
        json.loads(first)


def test_cli_export_writes_file(tmp_path):
    out = tmp_path / "openapi.json"
    assert (
        main(["tools", "export", "--format", "openapi", str(REPO / "tools.json"), "-o", str(out)])
        == 0
    )
    assert json.loads(out.read_text())["openapi"] == "3.1.0"


def test_cli_export_refuses_an_invalid_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([dict(VALID, method="FETCH")]))
    assert main(["tools", "export", "--format", "openai", str(bad)]) == 1
    assert capsys.readouterr().err.rstrip().endswith("nothing exported: fix the errors above first")
