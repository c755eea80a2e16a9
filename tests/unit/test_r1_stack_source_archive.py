"""The gateway build context archive is reproducible and carries no caches."""

from __future__ import annotations

import importlib.util
import io
import os
import tarfile
from pathlib import Path

MODULE = Path(__file__).resolve().parents[2] / "roles/r1_stack/library/r1_stack_source_archive.py"
spec = importlib.util.spec_from_file_location("r1_stack_source_archive", MODULE)
archive = importlib.util.module_from_spec(spec)
spec.loader.exec_module(archive)


def make_tree(root: Path) -> None:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n")
    (root / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (root / "pkg" / "stale.pyc").write_bytes(b"\0")
    (root / "pyproject.toml").write_text("[project]\n")


def names(content: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(content)) as tar:
        return tar.getnames()


def test_archive_has_the_sources_and_no_caches(tmp_path):
    make_tree(tmp_path)
    content = archive.build_archive(str(tmp_path), ["pyproject.toml", "pkg", "README.md"])
    assert names(content) == ["pkg/__init__.py", "pyproject.toml"]


def test_same_source_gives_the_same_bytes_whatever_the_mtimes(tmp_path):
    make_tree(tmp_path)
    first = archive.build_archive(str(tmp_path), ["pyproject.toml", "pkg"])
    os.utime(tmp_path / "pkg" / "__init__.py", (1, 1))
    assert archive.build_archive(str(tmp_path), ["pyproject.toml", "pkg"]) == first
    (tmp_path / "pkg" / "__init__.py").write_text("x = 2\n")
    assert archive.build_archive(str(tmp_path), ["pyproject.toml", "pkg"]) != first
