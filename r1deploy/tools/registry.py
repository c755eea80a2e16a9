"""Every rule of ``r1deploy tools validate``, declared once: the one registry findings refer to.

``r1deploy tools rules`` prints it; docs/rules.md is generated from it
(``python -m tests.lint.rules_doc``). The modules of r1deploy/tools/rules/ take their rules
from here by id (a typo fails at import), and a finding can only name an entry of it.

The file-format schema's findings are named ``schema-<keyword>`` after the JSON Schema keyword
that failed: one entry each for the keywords r1deploy/tools/tools.schema.json uses (a test
holds the two together).
"""

from __future__ import annotations

from r1deploy.rules import INPUT_RULES, JSON_RULES, Rule, index

TOOLS_RULES: tuple[Rule, ...] = (
    *INPUT_RULES,
    *JSON_RULES,
    Rule("unknown-key", "schema", "a key the format does not have; the closest known one"),
    Rule("missing-key", "schema", "a required key of a plugin is missing"),
    Rule("schema-type", "schema", "a value of the wrong JSON type (the file itself: not an array)"),
    Rule(
        "schema-pattern",
        "schema",
        "an id, name, base_url_env or header name not in the form the format gives",
    ),
    Rule("schema-enum", "schema", "a method other than GET, POST, PUT, PATCH, DELETE"),
    Rule("schema-minLength", "schema", "an empty description or url"),
    Rule("schema-minimum", "schema", "max_response_bytes below 1"),
    Rule("schema-exclusiveMinimum", "schema", "timeout_s of 0 or less"),
    Rule(
        "schema-maximum", "schema", "timeout_s over 300 seconds, or max_response_bytes over 10 MiB"
    ),
    Rule("schema-oneOf", "schema", 'a header value neither a string nor {"env": "NAME"}'),
    Rule(
        "duplicate-key",
        "document",
        "a key appears twice in one object: the last one would win without a word",
    ),
    Rule(
        "number-not-finite",
        "document",
        "NaN or Infinity (or 1e999): no JSON number, past every bound",
    ),
    Rule("params-not-a-schema", "params", "params is not a valid JSON Schema (draft 2020-12)"),
    Rule("params-not-object", "params", 'params does not describe an object ("type": "object")'),
    Rule("required-undeclared", "params", "a required argument that params.properties lacks"),
    Rule("remote-ref", "params", "a $ref that points outside the file"),
    Rule(
        "query-argument-not-scalar",
        "params",
        "a GET or DELETE argument that is not a scalar: it travels in the query string",
    ),
    Rule(
        "strict",
        "params",
        "a strict tool whose params break OpenAI strict mode (every property required, "
        "additionalProperties false, supported keywords only)",
    ),
    Rule(
        "argument-undescribed",
        "params",
        "an argument without a description: the model chooses its value from it",
        "warning",
    ),
    Rule("url-invalid", "url", "a url that cannot be read as a URL (its port, an IPv6 host)"),
    Rule("url-not-absolute", "url", "a url that is not an absolute http(s) URL"),
    Rule(
        "url-host-placeholder",
        "url",
        "a placeholder in the host: an argument would choose the server",
    ),
    Rule("url-bad-placeholder", "url", "a malformed {placeholder} in the url path"),
    Rule("url-placeholder-undeclared", "url", "a url placeholder that is no declared argument"),
    Rule(
        "url-placeholder-optional",
        "url",
        "a url placeholder for an optional argument: the path breaks when it is left out",
    ),
    Rule("url-plain-http", "url", "plain http to a host other than loopback", "warning"),
    Rule(
        "url-host-not-canonical",
        "url",
        "an IPv4 host not written as four decimal numbers (0177.0.0.1, 127.1, 0x7f000001)",
    ),
    Rule(
        "secret-literal",
        "headers",
        "a credential header (Authorization, Cookie, *token*, *key*...) written as a literal, "
        'not {"env": "NAME"}',
    ),
    Rule("duplicate-id", "files", "two plugins with the same id, in one file or across files"),
    Rule(
        "duplicate-name",
        "files",
        "two plugins with the same function name, in one file or across files",
    ),
)

RULES = index(TOOLS_RULES)
