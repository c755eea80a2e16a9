"""The spec lint (tests/lint/argspecs.py, run by make lint): each role's defaults/main.yml and
meta/argument_specs.yml agree on names and default values."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.lint import argspecs

ROOT = Path(__file__).resolve().parents[2]


def drifted_copy(tmp_path: Path, role: str = "docker") -> Path:
    roles = tmp_path / "roles"
    shutil.copytree(ROOT / "roles" / role, roles / role)
    return roles


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_the_shipped_roles_agree():
    assert argspecs.check_roles(ROOT / "roles") == []
    assert argspecs.main([str(ROOT / "roles")]) == 0


def test_a_spec_default_that_differs_from_the_defaults_file_fires(tmp_path, capsys):
    roles = drifted_copy(tmp_path)
    specs = roles / "docker/meta/argument_specs.yml"
    edit(
        specs,
        lambda d: d["argument_specs"]["main"]["options"]["docker_daemon_options"].update(
            default={}
        ),
    )
    (drift,) = argspecs.check_roles(roles)
    assert drift.file == specs and drift.line is not None
    assert drift.message.startswith(
        "docker_daemon_options (entry point main): the spec says default {} but "
        "defaults/main.yml sets {'log-driver': 'json-file'"
    )
    assert argspecs.main([str(roles)]) == 1
    assert "1 disagreements" in capsys.readouterr().out


def test_a_jinja_default_is_compared_as_its_string(tmp_path):
    roles = drifted_copy(tmp_path)
    specs = roles / "docker/meta/argument_specs.yml"
    edit(
        specs,
        lambda d: d["argument_specs"]["main"]["options"]["docker_source"].update(
            default="upstream"
        ),
    )
    (drift,) = argspecs.check_roles(roles)
    assert "docker_source" in drift.message
    assert "\"{{ r1_package_source | default('upstream') }}\"" in drift.message


def test_a_default_no_spec_declares_fires(tmp_path):
    roles = drifted_copy(tmp_path)
    defaults = roles / "docker/defaults/main.yml"
    defaults.write_text(defaults.read_text() + "docker_new_knob: 3\n")
    (drift,) = argspecs.check_roles(roles)
    assert drift.file == defaults
    assert drift.line == len(defaults.read_text().splitlines())
    assert drift.message.startswith("docker_new_knob is set here but no entry point")


def test_an_option_without_a_default_fires_unless_required(tmp_path):
    roles = drifted_copy(tmp_path)
    specs = roles / "docker/meta/argument_specs.yml"
    edit(
        specs,
        lambda d: d["argument_specs"]["main"]["options"].update(
            docker_extra={"type": "str", "description": "x"},
            docker_needed={"type": "str", "required": True, "description": "y"},
        ),
    )
    (drift,) = argspecs.check_roles(roles)
    assert drift.message.startswith("docker_extra (entry point main) is not set in defaults")


def test_any_entry_point_declares_a_variable(tmp_path):
    roles = drifted_copy(tmp_path)
    defaults = roles / "docker/defaults/main.yml"
    defaults.write_text(defaults.read_text() + "docker_run_only: true\n")
    edit(
        roles / "docker/meta/argument_specs.yml",
        lambda d: d["argument_specs"].update(
            run={
                "options": {
                    "docker_run_only": {"type": "bool", "default": True, "description": "z"}
                }
            }
        ),
    )
    assert argspecs.check_roles(roles) == []
