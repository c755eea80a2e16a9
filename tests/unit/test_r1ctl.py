"""native/r1ctl: the static control script with the conf the role renders for it.

The conf is rendered from roles/r1_native/templates/r1ctl.conf.j2; the lifecycle test runs
r1ctl as root against a stand-in server (a small HTTP server, named as one) that
start-stop-daemon starts as another user, as the demo runs vLLM, Open WebUI and the gateway.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.unit.test_native_services import ROOT, STACK_DIR, _services, render

R1CTL = ROOT / "roles/r1_native/files/r1ctl"

STANDIN = """\
# Stand-in server for the r1ctl tests: answers /health, and /whoami with what it runs as.
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"uid": os.getuid(), "cwd": os.getcwd(), "env": dict(os.environ),
                           "umask": os.umask(0o077)}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def conf(services: dict, stack: str = STACK_DIR, supervisor: str = "start-stop-daemon") -> str:
    return render(
        "r1ctl.conf.j2",
        __r1_native_services=services,
        r1_native_stack_dir=stack,
        __r1_native_dir=f"{stack}/native",
        __r1_native_supervisor=supervisor,
        r1_native_unit_prefix="r1deploy",
    )


def test_the_rendered_conf_gives_r1ctl_each_service_its_command_user_and_data():
    services = _services()
    text = conf(services)
    show = (
        "declare -p SERVICES HEALTH_URL RUN_AS HOME_DIR WORKDIR ARGV_vllm DATA_vllm "
        "DATA_tools_gateway ARGV_open_webui"
    )
    out = subprocess.run(
        ["bash", "-c", f". /dev/stdin; {show}"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 'SERVICES=([0]="vllm" [1]="tools-gateway" [2]="open-webui")' in out
    assert '[tools-gateway]="r1deploy-gateway:r1deploy-gateway"' in out
    assert f'[open-webui]="{STACK_DIR}/data/open-webui"' in out
    assert "DATA_tools_gateway=()" in out
    assert f'DATA_vllm=([0]="{STACK_DIR}/data/hf-cache" [1]="{STACK_DIR}/data/vllm-cache")' in out
    assert '[2]="vllm.entrypoints.openai.api_server"' in out
    assert "\nSUPERVISOR=start-stop-daemon\n" in text
    if shutil.which("shellcheck"):
        subprocess.run(
            ["shellcheck", "-s", "bash", "-e", "SC2034", "-"], input=text, text=True, check=True
        )


@pytest.fixture
def stack():
    """A stack directory others may enter (pytest's tmp_path is root's alone), with r1ctl,
    its conf for one stand-in service run as nobody, and the service's env file."""
    if os.geteuid() != 0 or not shutil.which("start-stop-daemon"):
        pytest.skip("needs root and start-stop-daemon (starts a process as another user)")
    root = Path(tempfile.mkdtemp(prefix="r1ctl-test-"))
    root.chmod(0o755)
    (root / "native/env").mkdir(parents=True, mode=0o711)
    # The server's program lives outside the stack directory, as environments shared
    # between stacks do (r1_native_venvs_dir): r1ctl must still know its process.
    program = Path(tempfile.mkdtemp(prefix="r1ctl-test-program-"))
    program.chmod(0o755)
    (program / "standin.py").write_text(STANDIN)
    port = free_port()
    service = {
        "argv": ["/usr/bin/python3", f"{program}/standin.py", str(port)],
        "health_url": f"http://127.0.0.1:{port}/health",
        "user": "nobody",
        "home": f"{root}/data/standin",
        "workdir": f"{root}/data/standin",
        "writable": [f"{root}/data/standin"],
        "data_dirs": [f"{root}/data/standin"],
    }
    text = conf({"standin": service}, stack=str(root)).replace(
        "[standin]=nobody:nobody", "[standin]=nobody:nogroup"
    )  # Debian's nobody
    (root / "native/r1ctl.conf").write_text(text)
    shutil.copy(R1CTL, root / "native/r1ctl")
    env = root / "native/env/standin.env"
    env.write_text("STANDIN_SECRET='s3cret'\n")
    env.chmod(0o640)
    os.chown(env, 0, pwd.getpwnam("nobody").pw_gid)
    yield root
    subprocess.run([root / "native/r1ctl", "stop"], capture_output=True)
    shutil.rmtree(root)
    shutil.rmtree(program)


def r1ctl(stack: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [stack / "native/r1ctl", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, R1CTL_TEST_LEAK="caller's"),
    )


def whoami(stack: Path) -> dict:
    url = r1ctl(stack, "wait", "standin", "20").stdout.split()[2]  # SERVICE: healthy URL ...
    with urllib.request.urlopen(url.replace("/health", "/whoami"), timeout=5) as answer:
        return json.load(answer)


def test_root_controls_a_service_that_runs_as_its_own_user(stack):
    nobody = pwd.getpwnam("nobody")
    data = stack / "data/standin"

    made = r1ctl(stack, "data-dirs")
    assert made.returncode == 0 and made.stdout == (
        f"standin: {data}: created, owned by nobody\n"
    ), made
    assert (data.stat().st_uid, data.stat().st_mode & 0o777) == (nobody.pw_uid, 0o700)
    assert r1ctl(stack, "data-dirs", "--check").stdout == ""

    started = r1ctl(stack, "start")
    assert started.returncode == 0 and "standin: started (pid" in started.stdout, started
    assert r1ctl(stack, "wait", "standin", "20").returncode == 0
    pid = r1ctl(stack, "pid", "standin").stdout.strip()
    me = whoami(stack)
    assert me["uid"] == nobody.pw_uid
    assert me["cwd"] == str(data) and me["env"]["HOME"] == str(data)
    assert me["env"]["USER"] == "nobody" and me["umask"] == 0o077
    assert me["env"]["STANDIN_SECRET"] == "s3cret"
    assert "R1CTL_TEST_LEAK" not in me["env"]  # a clean environment, like a unit's
    # What the supervisor writes is in a directory of the service's own.
    rundir = stack / "native/run/standin"
    assert (rundir.stat().st_uid, rundir.stat().st_mode & 0o777) == (nobody.pw_uid, 0o755)
    assert (rundir / "server.pid").read_text().strip() == pid
    assert (stack / "native/run/standin.pid").stat().st_uid == 0
    assert r1ctl(stack, "status").stdout.startswith(f"standin: running (pid {pid},")
    assert r1ctl(stack, "up").stdout == f"standin: running (pid {pid})\n"

    os.kill(int(pid), signal.SIGKILL)
    assert r1ctl(stack, "wait", "standin", "30").returncode == 0
    assert r1ctl(stack, "pid", "standin").stdout.strip() not in ("", pid)
    log = r1ctl(stack, "logs", "standin").stdout
    assert "r1ctl: standin failed (status 137); restart 1 of 5" in log

    stopped = r1ctl(stack, "stop")
    assert stopped.stdout == "standin: stopped\n"
    assert r1ctl(stack, "status").returncode == 3
    assert not (rundir / "server.pid").exists()


def test_data_dirs_gives_back_what_root_left_and_changes_nothing_after(stack):
    data = stack / "data/standin"
    data.mkdir(parents=True, mode=0o755)
    (data / "webui.db").write_text("root's")
    linked = stack / "outside"
    linked.write_text("not the service's")
    os.link(linked, data / "link")  # two links: left alone, or root would give it away

    changed = r1ctl(stack, "data-dirs")
    assert changed.stdout == (f"standin: {data}: given to nobody\nstandin: {data}: mode 0700\n"), (
        changed
    )
    assert (data / "webui.db").stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert linked.stat().st_uid == 0
    assert r1ctl(stack, "data-dirs").stdout == ""


def test_up_restarts_as_its_user_a_service_started_as_root_before_the_users(stack):
    assert r1ctl(stack, "data-dirs").returncode == 0
    (stack / "native/run/standin").mkdir(parents=True)
    subprocess.run(
        [
            "start-stop-daemon",
            "--start",
            "--background",
            "--make-pidfile",
            "--pidfile",
            stack / "native/run/standin.pid",
            "--startas",
            stack / "native/r1ctl",
            "--",
            "supervise",
            "standin",
        ],
        check=True,
    )
    assert r1ctl(stack, "wait", "standin", "20").returncode == 0
    assert whoami(stack)["uid"] == 0

    up = r1ctl(stack, "up")
    assert up.returncode == 0 and "standin: restarted (pid" in up.stdout, up
    assert whoami(stack)["uid"] == pwd.getpwnam("nobody").pw_uid
