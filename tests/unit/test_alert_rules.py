"""The alerting rules in monitoring/: every alert says how bad (severity), what (summary) and
what to do (description), and has a promtool unit test where it fires and one where it does
not. promtool itself runs in make lint (tests/lint/promtool.sh); this needs only PyYAML.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "rules" / "r1deploy.rules.yml"
TESTS = ROOT / "monitoring" / "tests" / "r1deploy.rules.test.yml"
SEVERITIES = {"page", "warning"}
# What a description names so a person knows where to act: a make target, an r1deploy
# command, a role variable or tools.json.
ACTION = re.compile(r"`make [a-z-]+|`r1deploy [a-z-]+|\br1_[a-z_]+\b|tools\.json")


def alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def rule_tests() -> list[dict]:
    tests = yaml.safe_load(TESTS.read_text())["tests"]
    return [case for test in tests for case in test.get("alert_rule_test", [])]


ALERTS = alerts()
NAMES = [rule["alert"] for rule in ALERTS]


def test_the_rules_file_has_the_alerts_of_issue_19():
    expected = {
        "VllmDown",
        "NoModelServerReady",
        "VllmKvCacheNearlyFull",
        "VllmRequestsWaitingGrowing",
        "VllmTtftSloBreached",
        "ChatErrorRate",
        "ToolCallFailureRate",
        "DiskFreeLow",
        "FrontDoorCertificateExpiresSoon",
    }
    assert expected <= set(NAMES)
    assert len(NAMES) == len(set(NAMES)), "an alert name is used twice"


def test_the_test_file_loads_the_rules_file():
    assert yaml.safe_load(TESTS.read_text())["rule_files"] == ["../rules/r1deploy.rules.yml"]


@pytest.mark.parametrize("rule", ALERTS, ids=NAMES)
def test_every_alert_has_severity_summary_and_what_to_do(rule):
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    assert annotations.get("summary", "").strip()
    description = annotations.get("description", "").strip()
    assert description, f"{rule['alert']}: no description"
    assert ACTION.search(description), (
        f"{rule['alert']}: the description names no make target, r1deploy command, r1_ "
        "variable or tools.json to act on"
    )


def untested(names: list[str], cases: list[dict], firing: bool) -> list[str]:
    """The names without a case where the alert fires (firing) or stays quiet (not firing)."""
    covered = {case["alertname"] for case in cases if bool(case.get("exp_alerts")) == firing}
    return [name for name in names if name not in covered]


def test_every_alert_has_a_firing_and_a_quiet_promtool_case():
    where = TESTS.relative_to(ROOT)
    assert untested(NAMES, rule_tests(), firing=True) == [], f"no firing case in {where}"
    assert untested(NAMES, rule_tests(), firing=False) == [], f"no quiet case in {where}"


def test_a_new_rule_without_a_firing_case_is_reported():
    quiet_only = [{"alertname": "SomeNewAlert", "eval_time": "5m", "exp_alerts": []}]
    assert untested(["SomeNewAlert"], rule_tests() + quiet_only, firing=True) == ["SomeNewAlert"]
    assert untested(["SomeNewAlert"], quiet_only, firing=False) == []


def test_gpu_alerts_say_they_need_the_dcgm_exporter():
    text = RULES.read_text()
    for rule in ALERTS:
        if "DCGM_FI_" in rule["expr"]:
            block = text[text.index(f"alert: {rule['alert']}") :].split("- alert:", 1)[0]
            assert "GPU hosts only (DCGM exporter)" in block, rule["alert"]
