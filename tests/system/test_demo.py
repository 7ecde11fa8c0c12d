"""
The main job, `mlops demo` (what `scripts/demo.sh` runs), as a user runs it: a fresh process in
the repository root, its own work folder, on SQLite and the local backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.system


def test_the_demo_trains_approves_deploys_predicts_and_gates_a_second_model(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
    result = subprocess.run([sys.executable, "-m", "airflow_provider_mlops.cli", "demo", "--workdir", str(tmp_path / "demo")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=280, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.rsplit("Demo finished in", 1)[1].split(": ", 1)[1].splitlines()[0])
    assert (summary["first"], summary["second"]) == ("1.0.0", "1.0.1")
    assert summary["prediction"]["predictions"], summary
    assert "HTTP 200" in result.stdout and "Gate: FAILED" in result.stdout
    # No third-party deprecation noise (the progress lines are timed, so tests/unit/test_readme.py checks them).
    output = result.stdout + result.stderr
    assert "DeprecationWarning" not in output, output[-3000:]
