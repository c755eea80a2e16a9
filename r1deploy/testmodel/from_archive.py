"""Build the test model with a Python that has torch but not r1deploy (the vLLM image):
take r1deploy from the stack's source archive, then run `r1deploy testmodel build --atomic`.

Standard library only until the import of r1deploy. roles/r1_stack copies this file into the
stack's gateway/ directory when the docker runtime serves the test model, and runs it in the
vLLM image:  python3 from_archive.py ARCHIVE MODEL_DIR KIND
"""

from __future__ import annotations

import sys
import tarfile
import tempfile


def main(argv: list[str]) -> int:
    archive, target, kind = argv
    source = tempfile.mkdtemp(prefix="r1deploy-src-")
    with tarfile.open(archive) as packed:
        members = [m for m in packed.getmembers() if m.name.startswith("r1deploy/")]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        packed.extractall(source, members=members, **safe)
    sys.path.insert(0, source)
    from r1deploy.testmodel.cli import main as testmodel

    return testmodel(["build", target, "--kind", kind, "--atomic"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
