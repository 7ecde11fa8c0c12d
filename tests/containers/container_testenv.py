"""Helpers of the container tests (a module of its own: every test folder has a ``conftest``)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast-cancer"


def exports(text: str) -> dict[str, str]:
    """``export KEY=VALUE`` lines (as scripts/containers.sh prints them) as a dict."""
    pairs = (line.removeprefix("export ").split("=", 1) for line in text.splitlines() if line.startswith("export "))
    return {key: value for key, value in pairs}
