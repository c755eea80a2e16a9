"""secrets.controller_match: the controller's copy of the host's secrets against the host's,
as roles/r1_stack/tasks/secrets-check.yml compares them (values never shown)."""

from __future__ import annotations

from pathlib import Path

from r1deploy.doctor.core import DoctorContext, Verdict, failed, passed, skipped

VAULT_HEADER = "$ANSIBLE_VAULT;"
# The front door's CA, kept by the controller under secrets/<host>/tls/ and on the host under
# front-door/tls/ (tls mode internal_ca or acme).
CA_KEY = "tls/ca.key"


def env_key(file_name: str) -> str:
    """The .env key of a secret file (roles/r1_stack/vars/main.yml): vllm_api_key ->
    VLLM_API_KEY, api_key_<name> -> API_KEY_<NAME> with - as _."""
    return file_name.upper().replace("-", "_")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def secrets_controller_match(ctx: DoctorContext) -> Verdict:
    directory = ctx.secrets_dir
    if directory is None:
        return skipped("no --secrets-dir (the controller's secrets/<host>/) given")
    if not directory.is_dir():
        return skipped(f"--secrets-dir {directory} is not a readable directory")
    env_file = ctx.stack.path / ".env"
    if not ctx.stack.env:
        return skipped(f"{env_file} is not readable here (run as root on the host)")
    same, differ, vaulted, host_lacks = [], [], [], []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if path.name.startswith(".") or path.suffix == ".tmp":
            continue
        text = _read(path)
        key = env_key(path.name)
        if text is None:
            continue
        if text.startswith(VAULT_HEADER):
            vaulted.append(path.name)  # the doctor holds no vault password
        elif not ctx.stack.env.get(key):
            host_lacks.append(path.name)  # the next deploy writes it: not a mismatch
        elif ctx.stack.env[key] == text.rstrip():  # the file lookup strips the end
            same.append(path.name)
        else:
            differ.append(f"{path.name} ({key})")
    controller_ca, host_ca = directory / CA_KEY, ctx.stack.path / "front-door" / "tls" / "ca.key"
    if controller_ca.is_file() and host_ca.is_file():
        ca = _read(controller_ca)
        if ca is not None and ca.startswith(VAULT_HEADER):
            vaulted.append(CA_KEY)
        elif ca is not None and ca == _read(host_ca):
            same.append(CA_KEY)
        elif ca is not None:
            differ.append(f"{CA_KEY} (front-door/tls/ca.key)")
    data = {"same": same, "differ": differ, "vault_encrypted": vaulted, "host_lacks": host_lacks}
    notes = []
    if vaulted:
        notes.append(f"not compared (vault-encrypted): {', '.join(vaulted)}")
    if host_lacks:
        notes.append(
            f"not in {env_file} yet (the next deploy writes them): {', '.join(host_lacks)}"
        )
    if differ:
        names = [d.split(" ", 1)[0] for d in differ]
        files = " ".join(n for n in names if n != CA_KEY)
        ways = []
        if files:
            ways.append(
                f"adopt the host's, which are what runs: cd {directory} && rm {files}, then "
                f"make deploy; or rotate on purpose: make rotate-secrets SECRET={names[0]}"
            )
        if CA_KEY in names:
            ways.append(f"the CA: rm -r {directory / 'tls'} to adopt the host's, then make deploy")
        return failed(
            "the controller's copy differs from the host's: " + ", ".join(differ),
            f"{directory} and the stack's {env_file} hold different values: the next make "
            "deploy stops in its preflight before any change, and a client given the "
            "controller's key is refused",
            "; ".join(ways),
            **data,
        )
    if not same:
        return skipped("nothing to compare: " + ("; ".join(notes) or f"{directory} is empty"))
    return passed(
        f"{len(same)} secrets agree with the host's ({', '.join(same)})"
        + (f"; {'; '.join(notes)}" if notes else ""),
        **data,
    )
