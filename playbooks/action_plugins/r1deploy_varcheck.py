"""r1deploy_varcheck: fails the run when a variable set in the inventory or with -e is one
that no role or playbook reads. Without it a misspelt name is silently ignored and the
default wins (`-e r1_stack_max_model_lenn=32768` renders the default context).

The first task of every playbook, once per run (run_once) on the controller (no connection),
in check mode too. Checked: each variable whose first word is the first word of a declared
name (r1_, r1deploy_, preflight_, docker_, nvidia_, cuda_: derived from the declarations), so
ansible_* and other tools' variables pass. Declared: every option of every entry point of
roles/*/meta/argument_specs.yml (next to the playbooks' directory), and the site-level
variables of playbooks/vars/site_variables.yml.

Ansible merges variables before a task sees them, so the origin of each one is found again
from the places VariableManager.get_vars merges: the inventory's own host and group
variables, the group_vars/ and host_vars/ files next to each inventory source and next to
the playbook (found as the host_group_vars vars plugin finds them), and each -e argument.
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Iterable, Iterator, Mapping

from ansible import context
from ansible.errors import AnsibleActionFail
from ansible.inventory.group import Group
from ansible.parsing.splitter import parse_kv
from ansible.plugins.action import ActionBase

# --- The pure part: names in, findings out (tests/unit/test_varcheck.py) -------------------


def prefixes_of(declared: Iterable[str]) -> tuple[str, ...]:
    """The first words of the declared names ('r1_stack_dir' -> 'r1_'): what is checked."""
    return tuple(sorted({name.split("_", 1)[0] + "_" for name in declared if "_" in name}))


def unknown_variables(found: Mapping[str, list[str]], declared: Iterable[str]) -> list[dict]:
    """found: variable name -> where it was set. Returns, by name, each one that carries a
    declared prefix but is not declared: {name, origins, suggestion (None when none is close)}."""
    declared = sorted(set(declared))
    prefixes = prefixes_of(declared)
    unknown = []
    for name in sorted(found):
        if name.startswith(prefixes) and name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            unknown.append({"name": name, "origins": list(found[name]),
                            "suggestion": close[0] if close else None})
    return unknown


def message(unknown: list[dict]) -> str:
    lines = [f"{len(unknown)} variable(s) set that no role or playbook reads (a misspelt "
             "name is ignored and the default used):"]
    for item in unknown:
        hint = (f"did you mean {item['suggestion']}?" if item["suggestion"]
                else "no declared name is close.")
        lines.append(f"  {item['name']}: {hint} Set {' and '.join(item['origins'])}.")
    lines.append("Fix: rename it or remove it. Declared: roles/*/meta/argument_specs.yml and "
                 "the site-level variables of playbooks/vars/site_variables.yml.")
    return "\n".join(lines)


# --- The Ansible part: the declared names, and where each variable was set -----------------


def _shown(path: str) -> str:
    """A path as ops typed it: relative to the working directory when under it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _vars_dirs(inventory_sources: Iterable[str], search_path: Iterable[str]) -> list[str]:
    """Where group_vars/ and host_vars/ are read: each inventory source's directory (as
    ansible.vars.plugins.get_vars_from_inventory_sources does), then the playbook's."""
    dirs = []
    for source in inventory_sources:
        if "," in source and not os.path.exists(source):  # a host list, not a path
            continue
        dirs.append(source if os.path.isdir(source) else os.path.dirname(source))
    dirs += search_path
    return list(dict.fromkeys(os.path.realpath(d) for d in dirs))


def _extra_vars(loader) -> Iterator[tuple[str, Mapping]]:
    """Each -e argument and what it sets, parsed as ansible.utils.vars.load_extra_vars does
    (the variable manager keeps only their merge)."""
    for option in context.CLIARGS.get("extra_vars", ()):
        if not option:
            continue
        if option.startswith("@"):
            data = loader.load_from_file(option[1:], unsafe=True, trusted_as_template=True)
            yield f"in extra vars file {option[1:]} (-e @)", data or {}
        elif option[0] in "[{":
            yield "as extra var (-e)", loader.load(option) or {}
        else:
            yield "as extra var (-e)", parse_kv(option)


class ActionModule(ActionBase):
    _requires_connection = False  # controller only: no host is reached
    _VALID_ARGS = frozenset()

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        playbooks = task_vars["playbook_dir"]
        declared = self._declared(os.path.join(os.path.dirname(playbooks), "roles"),
                                  os.path.join(playbooks, "vars", "site_variables.yml"))
        unknown = unknown_variables(self._found(task_vars), declared)
        result["unknown"] = unknown
        if unknown:
            result["failed"] = True
            result["msg"] = message(unknown)
        else:
            result["msg"] = f"every variable set is one of the {len(declared)} declared"
        return result

    def _load(self, path: str) -> Mapping:
        return self._loader.load_from_file(path, unsafe=True, trusted_as_template=True) or {}

    def _declared(self, roles_dir: str, site_file: str) -> set[str]:
        specs = glob.glob(os.path.join(roles_dir, "*", "meta", "argument_specs.yml"))
        if not specs:
            raise AnsibleActionFail(f"no roles/*/meta/argument_specs.yml under {roles_dir}")
        declared = set(self._load(site_file).get("r1deploy_site_variables") or {})
        for path in specs:
            for entry in (self._load(path).get("argument_specs") or {}).values():
                declared.update((entry or {}).get("options") or {})
        return declared

    def _found(self, task_vars) -> dict[str, list[str]]:
        """name -> where it was set, for the play's hosts, their groups and the -e arguments."""
        # The inventory is not among a task's variables: the variable manager that built them
        # holds it (no public accessor), with the sources it read vars files next to.
        inventory = self._task.get_variable_manager()._inventory
        hosts = [inventory.get_host(name) for name in task_vars["ansible_play_hosts_all"]]
        groups = {group.name: group for host in hosts for group in host.get_groups()}
        dirs = _vars_dirs(inventory._sources, self._task.get_search_path())
        found: dict[str, list[str]] = {}

        def note(names: Iterable[str], origin: str) -> None:
            for name in names:
                found.setdefault(name, []).append(origin)

        for entity in [*groups.values(), *hosts]:
            kind = "group" if isinstance(entity, Group) else "host"
            in_files: set[str] = set()
            for base in dirs:
                if os.path.isdir(vars_dir := os.path.join(base, f"{kind}_vars")):
                    for file in self._loader.find_vars_files(vars_dir, entity.name):
                        in_files.update(data := self._load(file))
                        note(data, f"in {_shown(file)} ({kind} {entity.name})")
            # Set in the inventory source itself (hosts.yml, an INI file, a script). Where vars
            # plugins run at inventory time (RUN_VARS_PLUGINS=start) the files' variables are
            # merged in here too: those are named by their file above. A host records its
            # source (inventory_file); a group does not, so with several -i all are named.
            source = entity.vars.get("inventory_file") if kind == "host" else None
            where = _shown(source) if source else ", ".join(_shown(s) for s in inventory._sources)
            note(set(entity.vars) - in_files, f"for {kind} {entity.name} in {where}")
        for origin, data in _extra_vars(self._loader):
            note(data, origin)
        return found
