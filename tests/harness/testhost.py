#!/usr/bin/env python3
"""Create and destroy real Debian 12 test hosts for the provisioning roles.

A test host is a debootstrapped Debian 12 root filesystem booted with ``systemd-nspawn -b``
(systemd as PID 1) inside a network namespace this script creates, reached over SSH with a key
generated for the run. Ansible sees it as an ordinary host through the inventory written here.

    testhost.py create NAME [--index N] [--group G]   boot a host (idempotent)
    testhost.py destroy NAME                          stop it and remove every trace
    testhost.py destroy-all                           destroy every r1t-* host left behind
    testhost.py status NAME                           print its state as JSON
    testhost.py image                                 build the cached root filesystem tarball

Needs root. Standard library only, so it runs before any virtualenv exists.
Layout (overridable with R1T_STATE_DIR / R1T_OUT_DIR / R1T_CACHE_DIR):
  ~/.cache/r1deploy/testhost/      the rootfs tarball, built once and shared
  /var/lib/r1deploy/testhosts/N/   the host's root filesystem and supervisor state (machine-local)
  build/harness/N/                 SSH keys, known_hosts, inventory.yml (ignored by git)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFIX = "r1t-"  # every netns, machine and iptables comment this harness owns starts with it
SUBNET = "10.231"  # 10.231.<index>.0/24 per host: .1 controller side, .2 the test host
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# python3-apt: Ansible's apt modules need it (stock Debian/Ubuntu servers have it).
INCLUDE = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
    "sudo",
    "ca-certificates",
]
HOST_TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "iptables": "iptables",
    "zstd": "zstd",
    "ssh": "openssh-client",
}
# Each flag fixes a failure seen without it (FACTS.md): no system bus, iptables permission
# inside (Docker), read-only ip_forward, session keyring (Docker/runc).
NSPAWN_FLAGS = [
    "--register=no",
    "--keep-unit",
    "--console=passive",
    "--capability=all",
    "--resolv-conf=off",
    "--system-call-filter=add_key keyctl bpf",
]

CACHE_DIR = Path(os.environ.get("R1T_CACHE_DIR", Path.home() / ".cache/r1deploy/testhost"))
STATE_DIR = Path(os.environ.get("R1T_STATE_DIR", "/var/lib/r1deploy/testhosts"))
OUT_DIR = Path(os.environ.get("R1T_OUT_DIR", REPO / "build/harness"))

CGROUP_RW_UNIT = """\
[Unit]
Description=Remount cgroup controllers read-write so Docker can create cgroups (r1deploy test host)
DefaultDependencies=no
After=local-fs.target
Before=docker.service containerd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" || true; done'

[Install]
WantedBy=multi-user.target
"""

SUPERVISOR = """\
# Boots the test host; exit code 133 means the host asked to reboot, so boot it again.
while :; do
  SYSTEMD_NSPAWN_API_VFS_WRITABLE=network systemd-nspawn -b -D "$1" -M "$2" \\
      --network-namespace-path="/run/netns/$2" "${@:3}"
  rc=$?
  [ "$rc" = 133 ] || exit "$rc"
done
"""


def log(msg: str) -> None:
    print(f"[testhost] {msg}", file=sys.stderr, flush=True)


def run(*cmd: str, check: bool = True, quiet: bool = False, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("text", True)
    if quiet:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.run(cmd, check=check, **kw)


def ensure_host_tools() -> None:
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if missing:
        log(f"installing host tools: {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        if run("apt-get", "install", "-y", *missing, check=False, env=env).returncode != 0:
            run("apt-get", "update", env=env)
            run("apt-get", "install", "-y", *missing, env=env)


def image_path(include: list[str] = INCLUDE, label: str = "minbase") -> Path:
    digest = hashlib.sha256(" ".join([SUITE, MIRROR, *include]).encode()).hexdigest()[:12]
    return CACHE_DIR / f"debian-{SUITE}-{label}-{digest}.tar.zst"


def ensure_image(include: list[str] = INCLUDE, label: str = "minbase") -> Path:
    """Build a Debian rootfs tarball with these packages once (~1 min); later hosts (and
    stand-in images) unpack it in seconds."""
    tarball = image_path(include, label)
    if tarball.exists():
        return tarball
    ensure_host_tools()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = CACHE_DIR / f".build-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    log(f"debootstrapping {SUITE} ({label}) into {work} (once)")
    try:
        with open(CACHE_DIR / f"debootstrap-{label}.log", "w") as out:
            run(
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(include)}",
                SUITE,
                str(work),
                MIRROR,
                stdout=out,
            )
        trust_controller_cas(work)
        run("chroot", str(work), "apt-get", "clean")
        partial = tarball.with_suffix(".partial")
        run(
            "tar",
            "--zstd",
            "--numeric-owner",
            "--xattrs",
            "-C",
            str(work),
            "-cf",
            str(partial),
            ".",
        )
        partial.rename(tarball)  # atomic: a crash never leaves a half tarball under the real name
        for stale in CACHE_DIR.glob(f"debian-{SUITE}-{label}-*.tar.zst"):
            if stale != tarball:  # built for another package list
                stale.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def trust_controller_cas(root: Path) -> None:
    """The controller trusts extra CAs (TLS-inspecting egress): a host or image built here
    must too, or apt over https and pip fail their certificate checks."""
    extra = Path("/usr/local/share/ca-certificates")
    if extra.is_dir() and any(extra.iterdir()):
        shutil.copytree(extra, root / "usr/local/share/ca-certificates", dirs_exist_ok=True)
        run("chroot", str(root), "update-ca-certificates", quiet=True)


class Host:
    def __init__(self, name: str, index: int = 1, group: str = "r1t"):
        if not name.replace("-", "").isalnum() or len(name) > 20:
            sys.exit(f"testhost: NAME {name!r} must be letters, digits and '-', at most 20 chars")
        if not 1 <= index <= 254:
            sys.exit(f"testhost: --index {index} must be within 1..254 (10.231.<index>.0/24)")
        self.name, self.index, self.group = name, index, group
        self.machine = PREFIX + name
        self.state = STATE_DIR / name
        self.rootfs = self.state / "rootfs"
        self.out = OUT_DIR / name
        self.veth = f"r1tv{index}"  # interface names are limited to 15 characters
        self.ip = f"{SUBNET}.{index}.2"
        self.gw = f"{SUBNET}.{index}.1"
        self.key = self.out / "id_ed25519"
        self.known_hosts = self.out / "known_hosts"
        self.inventory = self.out / "inventory.yml"

    @classmethod
    def load(cls, name: str) -> Host:
        meta = STATE_DIR / name / "host.json"
        if meta.exists():
            data = json.loads(meta.read_text())
            return cls(name, data["index"], data["group"])
        host = cls(name)
        host.veth = None  # index unknown: deleting the netns removes its veth pair anyway
        return host

    # -- supervisor ------------------------------------------------------------------------
    def supervisor_pid(self) -> int | None:
        try:
            pid = int((self.state / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        return pid if self.machine.encode() in cmdline else None

    def container_pids(self) -> list[int]:
        """Processes running inside this host's root filesystem (all started by this harness)."""
        pids = []
        target = str(self.rootfs.resolve()) if self.rootfs.exists() else None
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if target and os.readlink(proc / "root") == target:
                    pids.append(int(proc.name))
            except OSError:
                continue
        return pids

    def ssh_ok(self, command: str = "true", timeout: int = 3) -> bool:
        return run(*self.ssh_cmd(timeout), command, check=False, quiet=True).returncode == 0

    def ssh_cmd(self, timeout: int = 3) -> list[str]:
        return [
            "ssh",
            "-i",
            str(self.key),
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={timeout}",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"root@{self.ip}",
        ]

    # -- create ----------------------------------------------------------------------------
    def create(self) -> None:
        if self.supervisor_pid() and self.inventory.exists() and self.ssh_ok():
            log(f"{self.machine} already running at {self.ip}")
            self.write_inventory()
            return
        ensure_host_tools()  # before the clean-up, which needs iptables
        self.destroy(quiet=True)  # leftovers from a failed run: start clean
        tarball = ensure_image()
        t0 = time.monotonic()
        self.state.mkdir(parents=True, exist_ok=True)
        meta = {"index": self.index, "group": self.group}
        (self.state / "host.json").write_text(json.dumps(meta))
        self.unpack(tarball)
        self.make_keys()
        self.configure_rootfs()
        self.make_network()
        self.boot()
        self.wait_ready()
        self.write_inventory()
        log(
            f"{self.machine} up at {self.ip} in {time.monotonic() - t0:.1f}s; "
            f"inventory {self.inventory}"
        )

    def unpack(self, tarball: Path) -> None:
        self.rootfs.mkdir(parents=True)
        run(
            "tar",
            "--zstd",
            "--numeric-owner",
            "--xattrs",
            "-C",
            str(self.rootfs),
            "-xf",
            str(tarball),
        )

    def make_keys(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for path in (
            self.key,
            self.key.with_suffix(".pub"),
            self.out / "host_ed25519",
            self.out / "host_ed25519.pub",
        ):
            path.unlink(missing_ok=True)
        # The host key is made here too: known_hosts is exact, nothing is trusted on first use.
        for key, comment in (
            (self.key, f"r1deploy-{self.name}"),
            (self.out / "host_ed25519", self.machine),
        ):
            run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key))
        host_pub = (self.out / "host_ed25519.pub").read_text().split()
        self.known_hosts.write_text(f"{self.ip} {host_pub[0]} {host_pub[1]}\n")

    def configure_rootfs(self) -> None:
        root = self.rootfs
        (root / "etc/hostname").write_text(self.machine + "\n")
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {self.machine}\n")
        # resolv.conf from the controller: the netns reaches the same resolver through NAT.
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        shutil.copyfile(self.key.with_suffix(".pub"), ssh_dir / "authorized_keys")
        (ssh_dir / "authorized_keys").chmod(0o600)
        for old in (root / "etc/ssh").glob("ssh_host_*"):
            old.unlink()
        shutil.copyfile(self.out / "host_ed25519", root / "etc/ssh/ssh_host_ed25519_key")
        (root / "etc/ssh/ssh_host_ed25519_key").chmod(0o600)
        shutil.copyfile(self.out / "host_ed25519.pub", root / "etc/ssh/ssh_host_ed25519_key.pub")
        unit = root / "etc/systemd/system/r1t-cgroup-rw.service"
        unit.write_text(CGROUP_RW_UNIT)
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / unit.name).unlink(missing_ok=True)
        (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
        trust_controller_cas(root)

    def make_network(self) -> None:
        ns, subnet = self.machine, f"{SUBNET}.{self.index}.0/24"
        remove_network(ns, self.veth)  # a veth of this index left by an earlier run
        run("ip", "netns", "add", ns)
        run("ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        run("ip", "addr", "add", f"{self.gw}/24", "dev", self.veth)
        run("ip", "link", "set", self.veth, "up")
        run("ip", "-n", ns, "addr", "add", f"{self.ip}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "route", "add", "default", "via", self.gw)
        run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        comment = ["-m", "comment", "--comment", self.machine]
        run(
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            subnet,
            "!",
            "-o",
            self.veth,
            "-j",
            "MASQUERADE",
            *comment,
        )
        run("iptables", "-A", "FORWARD", "-i", self.veth, "-j", "ACCEPT", *comment)
        run("iptables", "-A", "FORWARD", "-o", self.veth, "-j", "ACCEPT", *comment)

    def boot(self) -> None:
        script = self.state / "supervisor.sh"
        script.write_text(SUPERVISOR)
        console = open(self.state / "console.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            ["bash", str(script), str(self.rootfs), self.machine, *NSPAWN_FLAGS],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        console.close()
        (self.state / "supervisor.pid").write_text(str(proc.pid))

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self.ssh_ok(timeout=2):
            if self.supervisor_pid() is None:
                sys.exit(
                    f"testhost: {self.machine} stopped while booting; see "
                    f"{self.state / 'console.log'}"
                )
            if time.monotonic() > deadline:
                sys.exit(
                    f"testhost: no SSH from {self.ip} after {timeout:.0f}s; see "
                    f"{self.state / 'console.log'}"
                )
            time.sleep(0.5)
        # Wait for boot to finish so tests never race units that are still starting.
        res = run(
            *self.ssh_cmd(),
            "timeout 60 systemctl is-system-running --wait",
            check=False,
            capture_output=True,
        )
        if res.stdout.strip() not in ("running", "degraded"):
            log(f"warning: {self.machine} system state {res.stdout.strip()!r}")

    def write_inventory(self) -> None:
        # JSON is YAML: no PyYAML needed here, and Ansible reads it as a YAML inventory.
        ssh_args = f"-o UserKnownHostsFile={self.known_hosts} -o StrictHostKeyChecking=yes"
        inv = {
            "all": {
                "children": {
                    self.group: {
                        "hosts": {
                            self.machine: {
                                "ansible_host": self.ip,
                                "ansible_user": "root",
                                "ansible_python_interpreter": "/usr/bin/python3",
                                "ansible_ssh_private_key_file": str(self.key),
                                "ansible_ssh_common_args": ssh_args,
                            }
                        }
                    }
                }
            }
        }
        self.inventory.write_text("---\n" + json.dumps(inv, indent=2) + "\n")

    # -- destroy ---------------------------------------------------------------------------
    def destroy(self, quiet: bool = False) -> None:
        pid = self.supervisor_pid()
        if pid:
            # SIGTERM makes systemd-nspawn power the host off cleanly; the loop then ends.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.container_pids() and time.monotonic() < deadline:
            time.sleep(0.3)
        for leftover in self.container_pids():  # processes of this host only, by id
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        remove_network(self.machine, self.veth)
        if self.state.exists():
            run("rm", "-rf", "--one-file-system", str(self.state))
        shutil.rmtree(self.out, ignore_errors=True)
        if not quiet:
            log(f"{self.machine} destroyed")

    def status(self) -> dict:
        return {
            "name": self.machine,
            "ip": self.ip,
            "running": bool(self.supervisor_pid()),
            "ssh": self.ssh_ok() if self.key.exists() else False,
            "inventory": str(self.inventory),
            "rootfs": str(self.rootfs),
        }


def remove_network(ns: str, veth: str | None) -> None:
    """Remove the netns, veth and every iptables rule tagged with this host's name."""
    for table in ("nat", "filter"):
        rules = run("iptables", "-t", table, "-S", capture_output=True, check=False).stdout
        for rule in rules.splitlines():
            if f"--comment {ns}" in rule.replace('"', "") and rule.startswith("-A "):
                run("iptables", "-t", table, "-D", *shlex.split(rule[3:]), check=False)
    if Path(f"/run/netns/{ns}").exists():
        run("ip", "netns", "del", ns, check=False)
    if veth and Path(f"/sys/class/net/{veth}").exists():
        run("ip", "link", "del", veth, check=False)


def destroy_all() -> None:
    names = set()
    if STATE_DIR.is_dir():
        names |= {p.name for p in STATE_DIR.iterdir() if p.is_dir()}
    if Path("/run/netns").is_dir():
        names |= {
            p.name[len(PREFIX) :] for p in Path("/run/netns").iterdir() if p.name.startswith(PREFIX)
        }
    for name in sorted(names):
        Host.load(name).destroy()
    # Rules whose host state is gone entirely.
    for table in ("nat", "filter"):
        rules = run("iptables", "-t", table, "-S", capture_output=True, check=False).stdout
        for rule in rules.splitlines():
            if f"--comment {PREFIX}" in rule.replace('"', "") and rule.startswith("-A "):
                run("iptables", "-t", table, "-D", *shlex.split(rule[3:]), check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    create = sub.add_parser("create", help="boot a test host (idempotent)")
    create.add_argument("name")
    create.add_argument("--index", type=int, default=1, help="subnet 10.231.INDEX.0/24 (1..254)")
    create.add_argument("--group", default="r1t", help="inventory group (default r1t)")
    for verb in ("destroy", "status"):
        sub.add_parser(verb).add_argument("name")
    sub.add_parser("destroy-all", help="destroy every r1t-* host, netns and rule")
    sub.add_parser("image", help="build the cached rootfs tarball")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces, systemd-nspawn, iptables)")
    if args.cmd == "create":
        Host(args.name, args.index, args.group).create()
    elif args.cmd == "destroy":
        Host.load(args.name).destroy()
    elif args.cmd == "destroy-all":
        destroy_all()
    elif args.cmd == "status":
        print(json.dumps(Host.load(args.name).status(), indent=2))
    elif args.cmd == "image":
        ensure_host_tools()
        print(ensure_image())
    return 0


if __name__ == "__main__":
    sys.exit(main())
