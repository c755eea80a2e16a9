"""Property tests: generated valid plugins validate and round-trip; junk never crashes."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r1deploy.cli import main
from r1deploy.tools import to_openai, to_openapi
from r1deploy.tools.validate import validate_text

SCALARS = ["string", "integer", "number", "boolean"]
arg_names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


@st.composite
def plugins(draw, index: int = 0) -> dict:
    names = draw(st.lists(arg_names, min_size=1, max_size=5, unique=True))
    properties = {
        n: {"type": draw(st.sampled_from(SCALARS)), "description": draw(st.text(min_size=1))}
        for n in names
    }
    required = [n for n in names if draw(st.booleans())]
    path_args = [n for n in required if draw(st.booleans())]
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    plugin = {
        "id": draw(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)) + f"_{index}",
        "name": draw(st.from_regex(r"[a-zA-Z0-9_-]{1,50}", fullmatch=True)) + f"_{index}",
        "description": draw(st.text(min_size=1)),
        "params": {"type": "object", "properties": properties, "required": required},
        "url": "https://api.example.com/v1" + "".join(f"/{{{n}}}" for n in path_args),
        "method": method,
    }
    if draw(st.booleans()):
        plugin["params"]["additionalProperties"] = False
    if draw(st.booleans()):
        plugin["timeout_s"] = draw(st.floats(min_value=0.5, max_value=300))
    return plugin


@st.composite
def tools_files(draw) -> list[dict]:
    count = draw(st.integers(min_value=1, max_value=4))
    return [draw(plugins(i)) for i in range(count)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(tools_files())
def test_generated_valid_plugins_validate(document):
    result = validate_text("generated.json", json.dumps(document))
    assert [d for d in result.diagnostics if d.severity == "error"] == []


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(tools_files())
def test_generated_plugins_round_trip_through_both_exports(document):
    openai_tools = json.loads(json.dumps(to_openai(document)))
    assert [t["function"]["name"] for t in openai_tools] == [p["name"] for p in document]
    assert [t["function"]["parameters"] for t in openai_tools] == [p["params"] for p in document]
    openapi = json.loads(json.dumps(to_openapi(document)))
    operations = [ops["post"] for ops in openapi["paths"].values()]
    assert [o["operationId"] for o in operations] == [p["name"] for p in document]
    assert [o["requestBody"]["content"]["application/json"]["schema"] for o in operations] == [
        p["params"] for p in document
    ]


@settings(max_examples=200)
@given(st.text())
def test_arbitrary_text_never_crashes_the_validator(text):
    result = validate_text("junk.json", text)
    try:
        json.loads(text)
    except json.JSONDecodeError:
        assert [d.rule for d in result.diagnostics] == ["json-syntax"]
        assert result.diagnostics[0].line is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "name",
                    "params",
                    "url",
                    "method",
                    "type",
                    "properties",
                    "required",
                    "headers",
                    "x",
                ]
            )
            | st.text(),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_never_crashes_and_explains_itself(document):
    result = validate_text("junk.json", json.dumps(document))
    for diagnostic in result.diagnostics:
        assert diagnostic.message and diagnostic.rule and diagnostic.file == "junk.json"


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.text(min_size=1).filter(lambda t: t.strip() not in ("[]",)))
def test_cli_on_bad_json_exits_1_with_a_message(tmp_path, capsys, junk):
    path = tmp_path / "junk.json"
    path.write_text(junk + "{")  # always broken JSON
    assert main(["tools", "validate", str(path)]) == 1
    assert "json-syntax" in capsys.readouterr().out
