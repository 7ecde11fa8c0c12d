"""README.md carries every docs/ page, and starts with the two commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_readme_is_in_sync_with_docs() -> None:
    result = subprocess.run([sys.executable, "scripts/sync_readme.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_starts_with_the_two_commands() -> None:
    head = (REPO / "README.md").read_text()[:2500]
    assert "bash scripts/demo.sh" in head and "bash scripts/test.sh" in head
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
