"""Rewrite a golden file in update mode (R1DEPLOY_UPDATE_GOLDEN=1) and say what changed.

In update mode a golden test cannot compare anything: it writes what it rendered. So
the rewrite returns the unified diff for the person running it to read, and the test
reports itself skipped rather than passed.
"""

from __future__ import annotations

import difflib
from pathlib import Path


def rewrite_golden(golden: Path, text: str) -> str:
    """Write ``text`` to ``golden``; the unified diff from what was there ("" if equal)."""
    existed = golden.exists()
    before = golden.read_text() if existed else ""
    if existed and before == text:
        return ""
    golden.parent.mkdir(parents=True, exist_ok=True)
    golden.write_text(text)
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"{golden} (was)" if existed else "/dev/null",
            tofile=f"{golden} (now)",
        )
    )
