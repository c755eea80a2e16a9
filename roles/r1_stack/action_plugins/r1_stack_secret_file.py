"""Action plugin: write one secret file on the controller (mode 0600, directory 0700),
vault-encrypted with the run's vault secret when the controller keeps its secrets encrypted.

The role adopts a host's secrets into a controller that has none (a second checkout, a CI
runner, a rebuilt laptop). The file must be written the way the operator keeps the others:
a plain copy would leave one secret in clear text beside vault-encrypted ones, and the
password lookup that generates secrets cannot take a given value.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
action: r1_stack_secret_file
short_description: Write a secret file on the controller, 0600, vault-encrypted where the others are
options:
  path: {description: File to write., type: path, required: true}
  content: {description: The secret., type: str, required: true}
  encrypt:
    description: >-
      true or false; auto encrypts when a file under vault_probe_dir is vault-encrypted
      (the operator keeps secrets encrypted).
    type: str
    default: auto
  vault_probe_dir: {description: Where to look for encrypted secrets (auto)., type: path}
  mode: {description: "File mode (a certificate is public: 0644).", type: str, default: "0600"}
"""

VAULT_HEADER = b"$ANSIBLE_VAULT;"


def _any_encrypted(directory: str | None) -> bool:
    if not directory or not os.path.isdir(directory):
        return False
    for path in Path(directory).rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                if handle.read(len(VAULT_HEADER)) == VAULT_HEADER:
                    return True
    return False


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        path, content = args.get("path"), args.get("content")
        if not path or content is None:
            raise AnsibleActionFail("r1_stack_secret_file needs path and content")
        encrypt = str(args.get("encrypt", "auto")).lower()
        if encrypt == "auto":
            wanted = _any_encrypted(args.get("vault_probe_dir"))
        else:
            wanted = encrypt in ("true", "yes", "1")
        # One line, as the password lookup writes the secrets it generates.
        data = to_bytes(content + "\n")
        if wanted:
            try:
                data = self._loader._vault.encrypt(data)
            except Exception as exc:  # AnsibleVaultError: no vault secret given to this run
                raise AnsibleActionFail(
                    f"{path}: the controller keeps its secrets vault-encrypted, so this one must "
                    f"be too, but the run has no vault password ({exc}). Fix: run again with "
                    "ANSIBLE_ARGS=--ask-vault-pass (or --vault-password-file FILE)") from None
        result.update(changed=True, path=path, encrypted=wanted)
        if self._task.check_mode:
            return result
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".secret-")
        try:
            with os.fdopen(descriptor, "wb") as handle:  # mkstemp: 0600 from the start
                handle.write(data)
            os.chmod(temporary, int(str(args.get("mode", "0600")), 8))
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
        return result
