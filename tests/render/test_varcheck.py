"""Real ansible-playbook runs of the variable check (the first task of every playbook): a
misspelt variable stops the run before anything is written, naming the variable, the closest
declared name and where it was set; what the repository sets passes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.render.test_render import BIN, REPO, ansible_env, failures, render

CHECK = "Check that every variable set in the inventory or with -e is one a role or playbook reads"
TYPO = "r1_stack_max_model_lenn"
HINT = f"{TYPO}: did you mean r1_stack_max_model_len?"


def _inventory(base: Path, where: str) -> tuple[Path, list[str], str]:
    """An inventory directory with the typo set in one place: (inventory, -e args, origin)."""
    inventory = base / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    host = {TYPO: 32768} if where == "host var" else {}
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"typo": host}}}))
    if where == "group_vars file":
        (inventory / "group_vars" / "all.yml").write_text(f"{TYPO}: 32768\n")
        return inventory, [], f"Set in {inventory}/group_vars/all.yml (group all)."
    if where == "host var":
        return inventory, [], f"Set for host typo in {inventory}/hosts.yml."
    return inventory, ["-e", f"{TYPO}=32768"], "Set as extra var (-e)."


@pytest.mark.parametrize(
    "where", ["extra var", "extra var, check mode", "group_vars file", "host var"]
)
def test_a_misspelt_variable_stops_the_render_naming_it_the_fix_and_where(tmp_path, where):
    inventory, extra, origin = _inventory(tmp_path, where.split(",")[0])
    if "check mode" in where:
        extra.append("--check")
    rc, result = render(inventory, tmp_path / "out", tmp_path / "secrets", *extra)
    assert rc != 0
    message = failures(result).get("typo", "")
    assert message.startswith(CHECK)
    assert f"{HINT} {origin}" in message
    assert not (tmp_path / "out").exists() and not (tmp_path / "secrets").exists()


def test_make_demos_variables_pass_the_check(tmp_path):
    """inventory/local with playbooks/vars/demo.yml, in check mode: the check runs and passes."""
    rc, result = render(
        REPO / "inventory/local",
        tmp_path / "out",
        tmp_path / "secrets",
        "-e",
        "@playbooks/vars/demo.yml",
        "--check",
    )
    assert rc == 0, failures(result)
    first = result["plays"][0]["tasks"][0]
    assert first["task"]["name"] == CHECK
    assert first["hosts"]["localhost"]["msg"].startswith("every variable set is one of the")


@pytest.mark.parametrize(
    "playbook", sorted(p.name for p in (REPO / "playbooks").glob("*.yml") if p.name != "render.yml")
)
def test_every_playbook_stops_at_the_check_before_reaching_a_host(tmp_path, playbook):
    """The host is unreachable (TEST-NET-1): the run must fail at the check, not reach it."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "typo": {
                            "ansible_host": "192.0.2.1",
                            "ansible_connection": "ssh",
                            "ansible_ssh_common_args": "-o ConnectTimeout=2",
                        }
                    }
                }
            }
        )
    )
    completed = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            f"playbooks/{playbook}",
            "--check",
            "-e",
            f"{TYPO}=32768",
        ],
        cwd=REPO,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(completed.stdout)
    assert completed.returncode != 0
    message = failures(result).get("typo", "")
    assert message.startswith(f"{CHECK}: ") and f"{HINT} Set as extra var (-e)." in message
    assert result["stats"]["typo"]["unreachable"] == 0
