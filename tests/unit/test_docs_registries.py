"""The docs say what the registries hold: every compose and tools rule in docs/rules.md
(generated from the registries: tests/lint/rules_doc.py), every smoke check in the table of
docs/smoke-and-e2e.md, every doctor check in docs/doctor.md's; and the CLI prints the
registries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from r1deploy.cli import main
from r1deploy.compose.registry import COMPOSE_RULES
from r1deploy.doctor.checks import DOCTOR_CHECKS
from r1deploy.smoke.checks import CHECKS
from r1deploy.tools.registry import TOOLS_RULES
from tests.lint import rules_doc

ROOT = Path(__file__).resolve().parents[2]


def test_docs_rules_md_is_what_the_registries_generate():
    committed = (ROOT / "docs/rules.md").read_text(encoding="utf-8")
    assert committed == rules_doc.render(), (
        "docs/rules.md differs from the registries: run python -m tests.lint.rules_doc --write"
    )


def table_ids(page: str, heading: str) -> list[str]:
    """The `ids` in the first column of the table under ``heading``."""
    section = page.split(heading, 1)[1].split("\n## ", 1)[0]
    return [
        m
        for row in section.splitlines()
        if row.startswith("| `")
        for m in re.findall(r"`([^`]+)`", row.split(" | ")[0])
    ]


@pytest.mark.parametrize(
    ("heading", "registry"),
    [
        ("## `r1deploy compose validate`", COMPOSE_RULES),
        ("## `r1deploy tools validate`", TOOLS_RULES),
    ],
)
def test_every_rule_has_its_row_in_docs_rules_md(heading, registry):
    page = (ROOT / "docs/rules.md").read_text(encoding="utf-8")
    assert table_ids(page, heading) == [r.id for r in registry]


def test_every_smoke_check_is_in_the_table_of_docs_smoke_and_e2e():
    page = (ROOT / "docs/smoke-and-e2e.md").read_text(encoding="utf-8")
    documented = set(table_ids(page, "## `r1deploy smoke`"))
    missing = [c.name for c in CHECKS if c.name not in documented]
    assert not missing, f"docs/smoke-and-e2e.md's check table lacks {missing}"


def test_every_doctor_check_has_its_row_in_docs_doctor_md_in_order():
    page = (ROOT / "docs/doctor.md").read_text(encoding="utf-8")
    assert table_ids(page, "## The checks") == [c.id for c in DOCTOR_CHECKS]


def test_the_readme_links_the_rules():
    assert "(docs/rules.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("verb", "registry"), [("compose", COMPOSE_RULES), ("tools", TOOLS_RULES)])
def test_the_cli_prints_the_registry(capsys, verb, registry):
    assert main([verb, "rules"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [r.id for r in registry]
    assert all(r.description in line for r, line in zip(registry, lines, strict=True))
    assert main([verb, "rules", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"rules": [r.to_dict() for r in registry]}
