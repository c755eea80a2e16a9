"""r1deploy_follow: wait for a task started with `async: N, poll: 0` and show the last line of
its log in the deploy output whenever it changes, so that a long step (the model's download)
shows its progress instead of a row of "FAILED - RETRYING" lines.

    - name: Start it
      ansible.builtin.shell: "cmd 2> {{ log }}"
      async: 14400
      poll: 0
      register: job
    - name: Wait for it
      r1deploy_follow:
        jid: "{{ job.ansible_job_id }}"
        log: "{{ log }}"
        every: 5        # seconds between two looks (default 5)
        timeout: 14400  # seconds in all (default 3600)
      register: done

Returns what ansible.builtin.async_status returns for the finished job (rc, stdout, stderr,
failed...), so the task after it reads the command's result as from the command itself.
Waiting and reading the log use the task's connection and become, as async_status would.
"""

from __future__ import annotations

import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("jid", "log", "every", "timeout"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        jid, log = args.get("jid"), args.get("log")
        if not jid or not log:
            raise AnsibleActionFail("r1deploy_follow needs jid (the async job's id) and log")
        every = float(args.get("every", 5))
        deadline = time.monotonic() + float(args.get("timeout", 3600))
        host = task_vars.get("inventory_hostname", "?")
        shown = ""
        async_dir = self._remote_expand_user(
            self.get_shell_option("async_dir", default="~/.ansible_async")
        )
        while True:
            # What ansible.builtin.async_status's own action plugin passes to its module.
            status = self._execute_module(
                module_name="ansible.legacy.async_status",
                module_args={"jid": jid, "mode": "status", "_async_dir": async_dir},
                task_vars=task_vars,
            )
            line = self._last_line(log)
            if line and line != shown:
                display.display(f"  {host}: {line}")
                shown = line
            # finished, or async_status itself failed (no such job: it never started)
            if status.get("finished") or (status.get("failed") and "finished" not in status):
                status.pop("invocation", None)
                status["finished"] = bool(status.get("finished"))
                result.update(status)
                return result
            if time.monotonic() > deadline:
                raise AnsibleActionFail(
                    f"still running after {args.get('timeout', 3600)} s (its log: {log} on "
                    f"{host}); it goes on in the background: wait for it or stop it there"
                )
            time.sleep(every)

    def _last_line(self, log: str) -> str:
        out = self._low_level_execute_command(
            f"tail -n 1 {shlex.quote(log)} 2>/dev/null", sudoable=True
        )
        return out.get("stdout", "").strip()
