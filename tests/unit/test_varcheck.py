"""The variable check (playbooks/action_plugins/r1deploy_varcheck.py): a variable with a role's
prefix that nothing declares is named, with the closest declared name and where it was set.
The render tier runs it in real ansible-playbook runs (tests/render/test_varcheck.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "r1deploy_varcheck", ROOT / "playbooks/action_plugins/r1deploy_varcheck.py"
)
varcheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(varcheck)

DECLARED = {
    "r1_stack_max_model_len",
    "r1_stack_profile",
    "r1_native_supervisor",
    "r1deploy_runtime",
    "preflight_allow_cpu_fallback",
    "docker_source",
    "nvidia_driver_branch",
    "cuda_version",
}


def shipped_declared() -> set[str]:
    """What the plugin declares for this checkout: every argument spec option, site variables."""
    site = yaml.safe_load((ROOT / "playbooks/vars/site_variables.yml").read_text())
    declared = set(site["r1deploy_site_variables"])
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            declared |= set(entry.get("options") or {})
    return declared


def test_the_checked_prefixes_are_the_first_words_of_the_declared_names():
    assert varcheck.prefixes_of(DECLARED) == (
        "cuda_",
        "docker_",
        "nvidia_",
        "preflight_",
        "r1_",
        "r1deploy_",
    )
    assert set(varcheck.prefixes_of(shipped_declared())) == {
        "cuda_",
        "docker_",
        "nvidia_",
        "preflight_",
        "r1_",
        "r1deploy_",
    }


def test_a_misspelt_variable_is_named_with_the_closest_declared_name_and_its_origin():
    found = {
        "r1_stack_max_model_lenn": ["as extra var (-e)"],
        "r1_stack_profile": ["in inventory/local/group_vars/all.yml (group all)"],
    }
    assert varcheck.unknown_variables(found, DECLARED) == [
        {
            "name": "r1_stack_max_model_lenn",
            "origins": ["as extra var (-e)"],
            "suggestion": "r1_stack_max_model_len",
        }
    ]


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("r1_stack_profil", "r1_stack_profile"),
        ("r1_stak_profile", "r1_stack_profile"),  # a typo in the prefix itself
        ("r1deploy_runtim", "r1deploy_runtime"),
        ("preflight_allow_cpu_fallbak", "preflight_allow_cpu_fallback"),
        ("docker_sourse", "docker_source"),
        ("nvidia_drivr_branch", "nvidia_driver_branch"),
        ("cuda_verison", "cuda_version"),
        ("r1_nothing_like_it_at_all", None),
    ],
)
def test_every_role_prefix_is_checked(name, suggestion):
    [item] = varcheck.unknown_variables({name: ["for host h in hosts.yml"]}, DECLARED)
    assert (item["name"], item["suggestion"]) == (name, suggestion)


@pytest.mark.parametrize(
    "name",
    [
        "ansible_host",
        "ansible_python_interpreter",
        "inventory_file",
        "r1t_roles",
        "my_team_var",
        "r1_stack_max_model_len",
        "r1deploy_runtime",
    ],
)
def test_declared_names_and_other_namespaces_pass(name):
    assert varcheck.unknown_variables({name: ["as extra var (-e)"]}, DECLARED) == []


def test_the_message_says_the_variable_the_fix_and_every_origin():
    found = {
        "r1_stack_max_model_lenn": [
            "as extra var (-e)",
            "in inventory/x/group_vars/all.yml (group all)",
        ],
        "r1_zzz": ["for host gpu-01 in inventory/x/hosts.yml"],
    }
    text = varcheck.message(varcheck.unknown_variables(found, DECLARED))
    assert text.splitlines()[1:3] == [
        "  r1_stack_max_model_lenn: did you mean r1_stack_max_model_len? Set as extra var (-e)"
        " and in inventory/x/group_vars/all.yml (group all).",
        "  r1_zzz: no declared name is close. Set for host gpu-01 in inventory/x/hosts.yml.",
    ]
    assert text.startswith("2 variable(s) set that no role or playbook reads")
    assert "Fix: rename it or remove it." in text and "playbooks/vars/site_variables.yml" in text


def _inventory_vars(node: dict) -> set[str]:
    """Every variable a YAML inventory sets (hosts, group vars, children)."""
    names = set((node or {}).get("vars") or {})
    for host in ((node or {}).get("hosts") or {}).values():
        names |= set(host or {})
    for child in ((node or {}).get("children") or {}).values():
        names |= _inventory_vars(child)
    return names


def test_what_the_repository_sets_is_declared():
    """The shipped inventories, make demo's variables, the render scenarios and every -e of the
    Makefile: none of them may trip the check."""
    names = set(yaml.safe_load((ROOT / "playbooks/vars/demo.yml").read_text()))
    for hosts in [
        ROOT / "inventory/local/hosts.yml",
        ROOT / "inventory/example/hosts.yml",
        ROOT / "tests/render/scenarios.yml",
    ]:
        names |= _inventory_vars(yaml.safe_load(hosts.read_text())["all"])
    for path in ROOT.glob("inventory/*/*_vars/*.yml"):
        names |= set(yaml.safe_load(path.read_text()) or {})
    names |= set(re.findall(r"-e (\w+)=", (ROOT / "Makefile").read_text()))
    assert {"r1deploy_render_dir", "r1deploy_log_lines", "r1deploy_purge"} <= names
    assert varcheck.unknown_variables(dict.fromkeys(names, ["here"]), shipped_declared()) == []


@pytest.mark.parametrize("playbook", sorted(p.name for p in (ROOT / "playbooks").glob("*.yml")))
def test_every_playbook_runs_the_check_first_once_whatever_the_tags(playbook):
    play = yaml.safe_load((ROOT / "playbooks" / playbook).read_text())[0]
    first = play["pre_tasks"][0]
    assert "r1deploy_varcheck" in first and first["run_once"] is True
    assert "always" in first.get("tags", []) + play.get("tags", [])
