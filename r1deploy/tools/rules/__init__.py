"""The rules of ``r1deploy tools validate``, one module a family: schema (the file format),
document (repeated keys, numbers), params, url, headers. The rules themselves are declared in
r1deploy/tools/registry.py; PLUGIN_RULES are the checks run on each plugin, in order."""

from __future__ import annotations

from collections.abc import Callable

from r1deploy.diagnostics import Findings
from r1deploy.tools.rules import document, headers, params, url

PluginRule = Callable[[tuple, dict, Findings], None]

PLUGIN_RULES: tuple[PluginRule, ...] = (
    document.keys_are_unique,
    document.numbers_are_finite,
    params.params_is_schema,
    params.required_are_declared,
    params.no_remote_ref,
    url.url_is_absolute_and_placeholders_match,
    url.url_host_is_canonical,
    params.query_arguments_are_scalars,
    params.strict_rules,
    headers.no_secret_literals_in_headers,
    params.arguments_are_described,
)
