"""Fixtures for the provisioning tier: a real test host from tests/harness and ansible runs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.compose_binary import ensure_compose_binary

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "tests/harness/testhost.py"
BIN = Path(sys.executable).parent
NAME = os.environ.get("R1T_NAME", "prov")
INDEX = os.environ.get("R1T_INDEX", "11")


@dataclass
class Run:
    rc: int
    stdout: str
    stats: dict  # the play recap per host: ok, changed, failures, unreachable, skipped

    @property
    def changed(self) -> int:
        return sum(h["changed"] for h in self.stats.values())

    def results(self, task_name: str) -> list[dict]:
        """Results of every task whose name contains task_name (json callback output)."""
        found = []
        for play in json.loads(self.stdout)["plays"]:
            for task in play["tasks"]:
                if task_name in task["task"]["name"]:
                    found.extend(task["hosts"].values())
        return found

    def messages(self) -> str:
        """Every msg of every task, joined: what an operator would read."""
        out = []
        for play in json.loads(self.stdout)["plays"]:
            for task in play["tasks"]:
                for res in task["hosts"].values():
                    for item in [res, *res.get("results", [])]:  # loops carry one msg per item
                        if isinstance(item, dict) and "msg" in item:
                            out.append(str(item["msg"]))
        return "\n".join(out)


class Host:
    def __init__(self, inventory: Path, name: str):
        self.inventory = inventory
        self.name = name
        data = json.loads(inventory.read_text().split("\n", 1)[1])
        self.vars = data["all"]["children"]["r1t"]["hosts"][name]

    def ssh(self, command: str, check: bool = True, stdin: bytes | None = None) -> str:
        args = ["ssh", "-i", self.vars["ansible_ssh_private_key_file"], "-o", "BatchMode=yes"]
        args += self.vars["ansible_ssh_common_args"].split()
        args += [f"root@{self.vars['ansible_host']}", command]
        res = subprocess.run(args, input=stdin, capture_output=True, check=False)
        if check and res.returncode != 0:
            raise AssertionError(f"{command!r} failed on {self.name}: {res.stderr.decode()}")
        return res.stdout.decode()

    def put(self, files: dict[str, tuple[bytes, int]]) -> None:
        """Copy {path: (content, mode)} onto the host through one tar stream."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for path, (content, mode) in files.items():
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode = len(content), mode
                tar.addfile(info, io.BytesIO(content))
        self.ssh("tar -C / -xf -", stdin=buf.getvalue())

    def play(
        self, roles: list[str], *, check: bool = False, tags: str | None = None, **extra
    ) -> Run:
        """Run tests/provision/roles.yml with the json callback; return the recap."""
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_ROLES_PATH=str(REPO / "roles"),
            ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
            ANSIBLE_CALLBACK_RESULT_FORMAT="json",
            PATH=f"{BIN}:{os.environ['PATH']}",
        )
        cmd = [
            str(BIN / "ansible-playbook"),
            "-i",
            str(self.inventory),
            str(REPO / "tests/provision/roles.yml"),
            "-e",
            json.dumps({"r1t_roles": roles, **extra}),
        ]
        if check:
            cmd.append("--check")
        if tags:
            cmd += ["--tags", tags]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
        try:
            stats = json.loads(res.stdout)["stats"]
        except (ValueError, KeyError) as exc:
            raise AssertionError(
                f"ansible-playbook gave no recap:\n{res.stdout}\n{res.stderr}"
            ) from exc
        return Run(res.returncode, res.stdout, stats)


def run_testinfra(inventory: Path, target: str = "tests/infra") -> subprocess.CompletedProcess:
    """The testinfra checks (tests/infra) against the r1t group, through the Ansible backend."""
    env = dict(
        os.environ, PATH=f"{BIN}:{os.environ['PATH']}", ANSIBLE_CONFIG=str(REPO / "ansible.cfg")
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rs",
            "-q",
            str(REPO / target),
            "--hosts=ansible://r1t",
            f"--ansible-inventory={inventory}",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )


@pytest.fixture(scope="session")
def compose_binary() -> Path:
    return ensure_compose_binary()


@pytest.fixture(scope="session")
def host() -> Host:
    if os.geteuid() != 0:
        pytest.fail("the provisioning tier needs root (network namespaces, systemd-nspawn)")
    subprocess.run([sys.executable, str(HARNESS), "create", NAME, "--index", INDEX], check=True)
    inventory = REPO / "build/harness" / NAME / "inventory.yml"
    yield Host(inventory, f"r1t-{NAME}")
    if not os.environ.get("R1T_KEEP"):
        subprocess.run([sys.executable, str(HARNESS), "destroy", NAME], check=False)


def build_deb(name: str, version: str, files: dict[str, tuple[bytes, int]], tmp: Path) -> Path:
    """A real .deb (dpkg-deb) holding files; used for the stand-in toolkit package."""
    root = tmp / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: r1deploy tests\n"
        f"Depends: python3\nDescription: r1deploy stand-in for a host without a GPU\n"
    )
    for path, (content, mode) in files.items():
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        dest.chmod(mode)
    deb = tmp / f"{name}_{version}_amd64.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def flat_repo_index(debs: list[Path]) -> bytes:
    """The Packages file of a flat apt repository (the layout NVIDIA's toolkit repo uses)."""
    stanzas = []
    for deb in debs:
        control = subprocess.run(
            ["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True
        ).stdout.strip()
        data = deb.read_bytes()
        stanzas.append(
            f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
            f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    return "\n".join(stanzas).encode()
