"""Golden-file update mode: it shows what it rewrites, and CI refuses to run in it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.golden import rewrite_golden

REPO = Path(__file__).resolve().parents[2]


def test_rewriting_a_golden_file_returns_the_diff(tmp_path):
    golden = tmp_path / "host" / "compose.yaml"
    golden.parent.mkdir()
    golden.write_text("services:\n  vllm:\n    image: vllm:0.31\n")
    diff = rewrite_golden(golden, "services:\n  vllm:\n    image: vllm:0.32\n")
    assert golden.read_text().endswith("vllm:0.32\n")
    assert "-    image: vllm:0.31\n+    image: vllm:0.32\n" in diff
    assert f"--- {golden} (was)" in diff
    assert rewrite_golden(golden, golden.read_text()) == ""


def test_a_new_golden_file_shows_as_all_added(tmp_path):
    golden = tmp_path / "new" / "settings.json"
    diff = rewrite_golden(golden, "{}\n")
    assert golden.read_text() == "{}\n"
    assert "--- /dev/null" in diff
    assert "+{}" in diff


@pytest.mark.parametrize("value", ["1", "0", ""])
def test_ci_run_refuses_update_golden_before_running_anything(tmp_path, value):
    # An empty PATH: had any command run before the check (dirname, date, make), bash
    # would have written "command not found" and .ci/run exited otherwise than 2.
    done = subprocess.run(
        ["/bin/bash", str(REPO / ".ci" / "run")],
        env={"R1DEPLOY_UPDATE_GOLDEN": value, "PATH": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(".ci/run: R1DEPLOY_UPDATE_GOLDEN is set")
    assert done.stderr.count("\n") == 1, done.stderr
