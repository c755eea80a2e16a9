"""Each tools.json rule: a failing input and the exact finding it must produce."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from r1deploy.cli import main
from r1deploy.tools import ToolsFileError, load_plugins, validate_files

REPO = Path(__file__).resolve().parents[2]

VALID = {
    "id": "weather_tool",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "params": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "url": "https://wttr.in/{city}",
    "method": "GET",
}


def write(tmp_path: Path, document, name: str = "tools.json") -> str:
    path = tmp_path / name
    text = document if isinstance(document, str) else json.dumps(document, indent=2)
    path.write_text(text)
    return str(path)


def findings(tmp_path: Path, *plugins_or_text) -> list[tuple[str, str, str, str]]:
    document = plugins_or_text[0] if isinstance(plugins_or_text[0], str) else list(plugins_or_text)
    report = validate_files([write(tmp_path, document)])
    return [(d.severity, d.rule, d.pointer, d.message) for d in report.diagnostics]


def line_of(path: str, needle: str) -> int:
    """1-based line of the first line holding ``needle``: where a finding must point."""
    lines = Path(path).read_text().splitlines()
    return next(number for number, text in enumerate(lines, 1) if needle in text)


def plugin(**changes) -> dict:
    result = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is None:
            result.pop(key)
        else:
            result[key] = value
    return result


def test_shipped_tools_json_is_valid():
    report = validate_files([str(REPO / "tools.json")])
    assert report.valid, "\n".join(map(str, report.diagnostics))
    assert report.diagnostics == []
    names = [p["name"] for p in report.plugins]
    assert "get_weather" in names and len(names) >= 3


def test_shipped_weather_plugin_takes_city_and_overridable_base_url():
    weather = next(p for p in load_plugins(str(REPO / "tools.json")) if p["name"] == "get_weather")
    assert weather["id"] == "weather_tool"
    assert weather["params"]["required"] == ["city"]
    assert weather["base_url_env"]


def test_valid_plugin_has_no_findings(tmp_path):
    assert findings(tmp_path, VALID) == []


def test_json_syntax_error_gives_line_and_column(tmp_path):
    report = validate_files([write(tmp_path, '[\n  {"id": "a",}\n]')])
    (d,) = report.diagnostics
    assert (d.rule, d.line, d.column) == ("json-syntax", 2, 14)
    assert d.message == "invalid JSON: Expecting property name enclosed in double quotes"
    assert str(d).startswith(f"{tmp_path / 'tools.json'}:2:14: error [json-syntax]")


def test_top_level_must_be_an_array(tmp_path):
    assert findings(tmp_path, json.dumps(VALID)) == [
        ("error", "schema-type", "", "the file must be a JSON array of plugin objects")
    ]


def test_unknown_key_is_an_error_with_did_you_mean(tmp_path):
    path = write(tmp_path, [plugin(methd="GET")])
    (d,) = validate_files([path]).diagnostics
    assert (d.rule, d.pointer, d.message) == ("unknown-key", "/0/methd", 'unknown key "methd"')
    assert d.fix == 'did you mean "method"? Rename the key'
    assert d.line == line_of(path, '"methd"')  # the key's own line


def test_unknown_key_without_close_match_lists_allowed_keys(tmp_path):
    report = validate_files([write(tmp_path, [plugin(zzz=1)])])
    assert report.diagnostics[0].fix.startswith("remove it; allowed keys are allow_private_network")


def test_missing_required_key(tmp_path):
    assert findings(tmp_path, plugin(url=None)) == [
        ("error", "missing-key", "/0", 'missing required key "url"')
    ]


def test_params_must_be_a_valid_json_schema(tmp_path):
    bad = plugin(params={"type": "object", "properties": {"city": {"type": "strin"}}})
    found = findings(tmp_path, bad)
    assert (
        "error",
        "params-not-a-schema",
        "/0/params/properties/city/type",
        "params is not a valid JSON Schema: 'strin' is not valid under any of the given schemas",
    ) in found


def test_params_must_be_of_type_object(tmp_path):
    assert (
        "error",
        "params-not-object",
        "/0/params",
        'params must describe an object of named arguments ("type": "object")',
    ) in findings(tmp_path, plugin(params={"type": "array"}, url="https://a.example/"))


def test_required_names_only_declared_properties(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["required"] = ["city", "cty"]
    report = validate_files([write(tmp_path, [plugin(params=params)])])
    (d,) = report.diagnostics
    assert (d.rule, d.pointer) == ("required-undeclared", "/0/params/required/1")
    assert d.message == '"cty" is required but not declared in params.properties'
    assert d.fix == 'did you mean "city"?'


def test_remote_ref_is_refused(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["properties"]["city"] = {"$ref": "https://schemas.example/city.json"}
    assert (
        "error",
        "remote-ref",
        "/0/params/properties/city/$ref",
        "$ref 'https://schemas.example/city.json' points outside this file",
    ) in findings(tmp_path, plugin(params=params))


def test_local_ref_is_accepted(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["$defs"] = {"city": {"type": "string", "description": "City"}}
    params["properties"]["city"] = {"$ref": "#/$defs/city", "description": "City"}
    assert findings(tmp_path, plugin(params=params)) == []


@pytest.mark.parametrize("name", ["get weather", "", "x" * 65, "wetter/abfrage"])
def test_name_must_fit_openai_function_names(tmp_path, name):
    assert findings(tmp_path, plugin(name=name)) == [
        ("error", "schema-pattern", "/0/name", f"name {name!r} is not a valid function name")
    ]


@pytest.mark.parametrize("tool_id", ["Weather", "weather-tool", "1weather", "wetter tool"])
def test_id_must_fit_open_webui_tool_ids(tmp_path, tool_id):
    assert findings(tmp_path, plugin(id=tool_id)) == [
        ("error", "schema-pattern", "/0/id", f"id {tool_id!r} is not a valid Open WebUI tool id")
    ]


def test_ids_and_names_are_unique_across_files(tmp_path):
    first = write(tmp_path, [VALID], "a.json")
    second = write(tmp_path, [plugin(description="Another.")], "b.json")
    report = validate_files([first, second])
    assert [(d.file, d.rule, d.pointer) for d in report.diagnostics] == [
        (second, "duplicate-id", "/0/id"),
        (second, "duplicate-name", "/0/name"),
    ]
    assert (
        report.diagnostics[0].message == f'id "weather_tool" is already used at {first}:3 (/0/id)'
    )


@pytest.mark.parametrize("url", ["wttr.in/{city}", "ftp://wttr.in/{city}", "/v1/{city}"])
def test_url_must_be_absolute_http(tmp_path, url):
    assert findings(tmp_path, plugin(url=url)) == [
        ("error", "url-not-absolute", "/0/url", f"url {url!r} is not an absolute http(s) URL")
    ]


def test_url_placeholder_must_be_a_declared_argument(tmp_path):
    assert findings(tmp_path, plugin(url="https://wttr.in/{town}/{city}")) == [
        (
            "error",
            "url-placeholder-undeclared",
            "/0/url",
            'url placeholder "{town}" is not a declared argument',
        )
    ]


def test_url_placeholder_must_be_required(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["properties"]["units"] = {"type": "string", "description": "m or u"}
    found = findings(tmp_path, plugin(params=params, url="https://wttr.in/{city}/{units}"))
    assert found == [
        (
            "error",
            "url-placeholder-optional",
            "/0/url",
            'url placeholder "{units}" is an optional argument: the path breaks when the model '
            "leaves it out",
        )
    ]


def test_url_placeholder_in_host_is_refused(tmp_path):
    assert (
        "error",
        "url-host-placeholder",
        "/0/url",
        "a placeholder in the host would let an argument choose which server is called",
    ) in findings(tmp_path, plugin(url="https://{city}.example.com/"))


def test_malformed_placeholder(tmp_path):
    assert findings(tmp_path, plugin(url="https://wttr.in/{city")) == [
        (
            "error",
            "url-bad-placeholder",
            "/0/url",
            "malformed placeholder in the url path: 'https://wttr.in/{city'",
        )
    ]


def test_method_must_be_known(tmp_path):
    assert findings(tmp_path, plugin(method="FETCH")) == [
        ("error", "schema-enum", "/0/method", "method 'FETCH' is not supported")
    ]


def test_get_arguments_must_be_scalars(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["properties"]["days"] = {
        "type": "array",
        "items": {"type": "integer"},
        "description": "days",
    }
    params["required"].append("days")
    assert findings(tmp_path, plugin(params=params)) == [
        (
            "error",
            "query-argument-not-scalar",
            "/0/params/properties/days",
            'argument "days" of a GET tool must be a string, number, integer or boolean: it '
            "travels in the query string",
        )
    ]


def test_post_arguments_may_be_structured(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["properties"]["days"] = {
        "type": "array",
        "items": {"type": "integer"},
        "description": "days",
    }
    params["required"].append("days")
    assert findings(tmp_path, plugin(params=params, method="POST")) == []


def test_strict_tool_needs_all_properties_required(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["properties"]["units"] = {"type": "string", "description": "m or u"}
    assert findings(tmp_path, plugin(params=params, strict=True)) == [
        (
            "error",
            "strict",
            "/0/params/required",
            'strict mode needs every property required; not required: "units"',
        )
    ]


def test_strict_tool_needs_additional_properties_false(tmp_path):
    params = copy.deepcopy(VALID["params"])
    del params["additionalProperties"]
    assert findings(tmp_path, plugin(params=params, strict=True)) == [
        (
            "error",
            "strict",
            "/0/params",
            'an object in a strict tool must set "additionalProperties": false',
        )
    ]


def test_strict_tool_refuses_unsupported_keywords(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["minProperties"] = 1
    assert findings(tmp_path, plugin(params=params, strict=True)) == [
        (
            "error",
            "strict",
            "/0/params/minProperties",
            'keyword "minProperties" is not supported in strict mode',
        )
    ]


def test_non_strict_tool_may_have_optional_arguments(tmp_path):
    params = copy.deepcopy(VALID["params"])
    params["properties"]["units"] = {"type": "string", "description": "m or u"}
    assert findings(tmp_path, plugin(params=params)) == []


def test_secret_header_literal_is_refused(tmp_path):
    report = validate_files([write(tmp_path, [plugin(headers={"X-Api-Key": "sk-123"})])])
    (d,) = report.diagnostics
    assert (d.rule, d.pointer) == ("secret-literal", "/0/headers/X-Api-Key")
    assert d.fix == 'use {"env": "X_API_KEY"} and set X_API_KEY where the gateway runs'


def test_secret_header_from_env_is_accepted(tmp_path):
    headers = {
        "Authorization": {"env": "WEATHER_TOKEN", "prefix": "Bearer "},
        "Accept": "text/plain",
    }
    assert findings(tmp_path, plugin(headers=headers)) == []


def test_header_value_must_be_string_or_env(tmp_path):
    assert findings(tmp_path, plugin(headers={"Accept": 5})) == [
        (
            "error",
            "schema-oneOf",
            "/0/headers/Accept",
            'a header value must be a string or {"env": "NAME"}',
        )
    ]


def test_warnings_are_distinct_from_errors(tmp_path):
    params = copy.deepcopy(VALID["params"])
    del params["properties"]["city"]["description"]
    report = validate_files([write(tmp_path, [plugin(params=params, url="http://wttr.in/{city}")])])
    assert report.valid
    assert sorted((d.severity, d.rule) for d in report.diagnostics) == [
        ("warning", "argument-undescribed"),
        ("warning", "url-plain-http"),
    ]


def test_load_plugins_raises_with_every_error(tmp_path):
    path = write(tmp_path, [plugin(method="FETCH", url="x")])
    with pytest.raises(ToolsFileError) as raised:
        load_plugins(path)
    assert "schema-enum" in str(raised.value) and "url-not-absolute" in str(raised.value)


# --- the CLI ----------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path, capsys):
    good = write(tmp_path, [VALID], "good.json")
    bad = write(tmp_path, [plugin(method="FETCH")], "bad.json")
    assert main(["tools", "validate", good]) == 0
    assert main(["tools", "validate", bad]) == 1
    assert main(["tools", "validate", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["tools", "validate", "--format", "yaml", good])
    assert usage.value.code == 2


def test_cli_text_output_names_file_line_pointer_and_fix(tmp_path, capsys):
    bad = write(tmp_path, [plugin(methd="GET")])
    main(["tools", "validate", bad])
    out = capsys.readouterr().out
    assert (
        f'{bad}:{line_of(bad, "methd")}:5: error [unknown-key] /0/methd: unknown key "methd"' in out
    )
    assert 'fix: did you mean "method"?' in out


def test_cli_json_output(tmp_path, capsys):
    bad = write(tmp_path, [plugin(method="FETCH")])
    assert main(["tools", "validate", "--format", "json", bad]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["valid"] is False and result["errors"] == 1 and result["warnings"] == 0
    assert result["diagnostics"][0]["pointer"] == "/0/method"
    assert result["diagnostics"][0]["line"] == line_of(bad, "FETCH")
