#!/usr/bin/python
"""Pack the r1deploy package source into a reproducible tar.gz (the gateway's build context).

Runs on the controller. The same source always gives the same bytes (sorted entries,
zero mtimes and owners, normalised modes, no caches), so copying the archive to a host
is idempotent and the gateway image is rebuilt only when the source changed.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: r1_stack_source_archive
short_description: Pack project files into a reproducible tar.gz
description:
  - Packs the given files and directories of I(root) into I(dest), skipping caches and
    build outputs. The archive is rewritten only when its content changes.
options:
  root:
    description: Directory the paths are relative to.
    type: path
    required: true
  paths:
    description: Files or directories under I(root) to pack; missing ones are skipped.
    type: list
    elements: str
    required: true
  dest:
    description: Archive to write.
    type: path
    required: true
author: r1deploy
"""

EXAMPLES = r"""
- name: Pack the r1deploy source for the gateway image
  r1_stack_source_archive:
    root: /src/r1deploy
    paths: [pyproject.toml, README.md, r1deploy]
    dest: /src/r1deploy/build/gateway-src.tar.gz
"""

RETURN = r"""
sha256:
  description: Checksum of the archive.
  type: str
  returned: always
"""

import gzip  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".egg-info")


def _members(root: str, paths: list[str]) -> list[str]:
    found = []
    for path in paths:
        full = os.path.join(root, path)
        if os.path.isfile(full):
            found.append(path)
        elif os.path.isdir(full):
            for directory, dirs, files in os.walk(full):
                dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(SKIP_SUFFIXES)]
                for name in files:
                    if not name.endswith(SKIP_SUFFIXES):
                        found.append(os.path.relpath(os.path.join(directory, name), root))
    return sorted(found)


def build_archive(root: str, paths: list[str]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in _members(root, paths):
            full = os.path.join(root, relative)
            info = tarfile.TarInfo(relative)
            info.size = os.path.getsize(full)
            info.mode = 0o755 if os.access(full, os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(full, "rb") as handle:
                tar.addfile(info, handle)
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "paths": {"type": "list", "elements": "str", "required": True},
            "dest": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    root, dest = module.params["root"], module.params["dest"]
    content = build_archive(root, module.params["paths"])
    digest = hashlib.sha256(content).hexdigest()
    current = None
    if os.path.exists(dest):
        with open(dest, "rb") as handle:
            current = hashlib.sha256(handle.read()).hexdigest()
    changed = current != digest
    if changed and not module.check_mode:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        # Write then rename: hosts rendered in parallel may share the archive.
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, dest)
    module.exit_json(changed=changed, sha256=digest, dest=dest)


if __name__ == "__main__":
    main()
