"""The native runtime's systemd units on a real Debian 12 host (systemd as PID 1).

roles/r1_native runs for real (tags r1_native_configure and r1_native_run: everything but
the venv installs) on a stack directory rendered by roles/r1_stack's own builders. Where the
real servers would be in their venvs, a stand-in is installed
(tests/provision/standin/r1deploy-service), so each runs under the unit and the r1ctl the
role wrote, and reports from inside its sandbox what it runs as and what it can touch.
`systemd-analyze security` scores each unit.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.unit.test_native_services import DOTENV_TEXT, _config
from tests.unit.test_native_services import USERS as ALL_USERS
from tests.unit.test_native_services import stack as r1_stack

pytestmark = pytest.mark.infra
# Not the default /opt/r1deploy: the testinfra stack checks later in the tier take a stack
# there for a docker one.
STACK = "/srv/r1native"
STANDIN = Path(__file__).parent / "standin" / "r1deploy-service"
PORTS = {"vllm": 8000, "tools-gateway": 8090, "open-webui": 3000}
# The services of this stack, their own users (it is rendered without a front door).
USERS = {service: ALL_USERS[service] for service in PORTS}
DATA = {
    "vllm": [f"{STACK}/data/hf-cache", f"{STACK}/data/vllm-cache"],
    "tools-gateway": [],
    "open-webui": [f"{STACK}/data/open-webui"],
}
MODEL = f"{STACK}/models/test"
ROLE_VARS = {"r1_native_stack_dir": STACK, "r1_native_model_path": MODEL}
TAGS = "r1_native_configure,r1_native_run"
# systemd-analyze security's exposure, 0 (best) to 10. The units before the sandbox scored
# 9.6 ("UNSAFE": root, nothing restricted); with it, 1.4 each (1.7 for vLLM on the gpu
# profile, which keeps /dev). 2.0 fails when the sandbox loses its syscall filter (about 2.9)
# or its capability bound (about 3.3), or User= and ProtectSystem= together (2.0). That each
# directive is there, and what it does at run time, the unit test and the stand-in check.
EXPOSURE_LIMIT = 2.0


def stack_files() -> dict[str, tuple[bytes, int]]:
    """What roles/r1_stack renders for a native cpu stack (settings, compose file, .env),
    a model directory, and data an older deployment left to root."""
    config = _config("cpu")
    return {
        f"{STACK}/settings.json": (json.dumps(r1_stack.r1_stack_settings(config)).encode(), 0o644),
        f"{STACK}/compose.yaml": (
            yaml.safe_dump(r1_stack.r1_stack_compose(config)).encode(),
            0o644,
        ),
        f"{STACK}/.env": (DOTENV_TEXT.encode(), 0o600),
        f"{STACK}/gateway/r1deploy-src.tar.gz": (b"not needed: no install here", 0o644),
        f"{MODEL}/config.json": (b"{}", 0o644),
        f"{STACK}/data/open-webui/webui.db": (b"root's, from before the users", 0o644),
        f"{STACK}/data/vllm-cache/torch_compile_cache/x": (b"root's", 0o644),
    }


def ask(host, port: int, path: str) -> dict:
    url = f"http://127.0.0.1:{port}{path}"
    fetch = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
    return json.loads(host.ssh(f"python3 -c {shlex.quote(fetch)}"))


@pytest.fixture(scope="module")
def native(host):
    """Deploy (configure, then start) the native stack with stand-ins; yield what ran."""
    host.put(stack_files())
    first = host.play(["r1_native"], tags="r1_native_configure", **ROLE_VARS)
    assert first.rc == 0, first.messages()
    # The stand-in goes where each real server would be: the first word of its command.
    argv0 = host.ssh(
        f". {STACK}/native/r1ctl.conf && "
        "echo ${ARGV_vllm[0]} ${ARGV_tools_gateway[0]} ${ARGV_open_webui[0]}"
    ).split()
    host.put({path: (STANDIN.read_bytes(), 0o755) for path in argv0})
    started = host.play(["r1_native"], tags=TAGS, **ROLE_VARS)
    again = host.play(["r1_native"], tags=TAGS, **ROLE_VARS)
    yield {
        "first": first,
        "started": started,
        "again": again,
        "findings": {s: ask(host, port, "/standin") for s, port in PORTS.items()},
    }
    units = " ".join(f"r1deploy-{service}.service" for service in USERS)
    host.ssh(
        f"systemctl disable --now {units}; cd /etc/systemd/system && rm -f {units}; "
        f"systemctl daemon-reload; rm -rf {STACK}",
        check=False,
    )


def test_the_role_starts_the_units_and_a_second_run_changes_nothing(native):
    assert native["started"].rc == 0, native["started"].messages()
    assert native["started"].changed > 0
    assert native["again"].rc == 0, native["again"].messages()
    assert native["again"].changed == 0, native["again"].messages()


def test_each_service_runs_as_its_own_user_without_privileges(host, native):
    for service, found in native["findings"].items():
        uid, gid = (int(host.ssh(f"id -{flag} {USERS[service]}")) for flag in "ug")
        assert (found["uid"], found["gid"], found["groups"]) == (uid, gid, [gid]), service
        assert found["cap_eff"] == found["cap_bnd"] == "0000000000000000", service
        assert (found["no_new_privs"], found["seccomp"]) == ("1", "2"), service
        assert found["tmp"] == "ok", service  # its own /tmp
        # What r1ctl reports as its pid is the process running as that user.
        pid = host.ssh(f"{STACK}/native/r1ctl pid {service}").strip()
        assert f"Uid:\t{uid}\t" in host.ssh(f"cat /proc/{pid}/status"), service


def test_each_service_writes_only_its_own_data(native):
    for service, found in native["findings"].items():
        writable = sorted(p for p, result in found["write"].items() if result == "ok")
        assert writable == DATA[service], (service, found["write"])
        # Outside the data: the sandbox's read-only system, not just file modes.
        assert found["write"]["/etc"] == "Read-only file system", service
        assert found["write"][f"{STACK}/.env"] in ("Read-only file system", "Permission denied"), (
            service
        )


def test_each_service_reads_only_its_own_env_file(native):
    for service, found in native["findings"].items():
        readable = sorted(p for p, result in found["read"].items() if result == "ok")
        assert readable == [f"{STACK}/native/env/{service}.env"], (service, found["read"])


def test_files_and_data_dirs_belong_to_whom_they_should(host, native):
    for service, user in USERS.items():
        assert host.ssh(f"stat -c '%a %U:%G' {STACK}/native/env/{service}.env").strip() == (
            f"640 root:{user}"
        )
        for path in DATA[service]:
            # What the older deployment left to root in it is the service's now.
            owners = host.ssh(f"find {path} -printf '%u:%g\\n' | sort -u").split()
            assert owners == [f"{user}:{user}"], (path, owners)
            assert host.ssh(f"stat -c %a {path}").strip() == "700"
    venv_owners = host.ssh(f"find {STACK}/venvs -printf '%u\\n' | sort -u").split()
    assert venv_owners == ["root"]


def test_systemd_analyze_scores_each_unit_below_the_limit(host, native, capsys):
    scores = {}
    for service in USERS:
        out = host.ssh(f"systemd-analyze security --no-pager r1deploy-{service}.service")
        scores[service] = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out)[1])
    with capsys.disabled():  # in make test-infra's output
        print(f"\nsystemd-analyze security exposure: {scores} (limit {EXPOSURE_LIMIT})")
    assert all(score < EXPOSURE_LIMIT for score in scores.values()), scores


def test_a_model_the_vllm_user_cannot_read_stops_the_deploy_saying_how(host, native):
    host.ssh(f"chmod 0600 {MODEL}/config.json")
    try:
        run = host.play(["r1_native"], tags="r1_native_configure", **ROLE_VARS)
        assert run.rc != 0
        assert f"{MODEL}/config.json cannot be read by r1deploy-vllm" in run.messages(), (
            run.messages()
        )
        assert f"chmod -R o+rX {MODEL}" in run.messages().replace("\n", " ")
    finally:
        host.ssh(f"chmod 0644 {shlex.quote(MODEL)}/config.json")
