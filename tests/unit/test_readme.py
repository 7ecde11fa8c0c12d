"""
README.md is short and starts with the two commands; the first of them, the demo, is readable:
it hides third-party deprecation warnings and is never silent for long.

The full documentation is in docs/ (tests/unit/test_docs.py checks it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_mlops.demo import progress

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MAX_README_BYTES = 15 * 1024
TWO_COMMANDS = [
    "bash scripts/demo.sh     # the main job: the example model's full pipeline, locally (SQLite, local backend)",
    "bash scripts/test.sh     # the whole test suite: ruff, mypy, CI and infrastructure checks, pytest",
]


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size < MAX_README_BYTES, (
        f"README.md is {size} bytes; keep it under {MAX_README_BYTES}: move the detail into a page in docs/ and link it"
    )


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    headings = re.findall(r"^#{1,6} .*$", text, re.M)
    assert headings[:2] == ["# airflow-provider-mlops", "## The two commands"], headings[:3]
    first_block = re.search(r"^```bash\n(.*?)^```$", text, re.S | re.M)
    assert first_block is not None, "README.md: no bash block"
    assert first_block[1].splitlines() == TWO_COMMANDS, first_block[1]
    assert text.index(first_block[0]) < text.index("\n## ", text.index("## The two commands") + 1)
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text(), ".ci/run must run scripts/test.sh, the README's test command"


def test_the_retired_readme_generator_is_gone() -> None:
    assert not (REPO / "scripts" / "sync_readme.py").exists(), "scripts/sync_readme.py: README.md is no longer generated; delete it"
    assert "BEGIN docs/" not in README.read_text(), "README.md still holds a generated block pasted from docs/"


def test_demo_progress_prints_a_line_while_a_step_runs_and_stops_after(capsys: pytest.CaptureFixture[str]) -> None:
    seen = ""
    with progress("the api-server", every=0.05):
        deadline = time.monotonic() + 30
        while "waiting for the api-server (" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
            seen += capsys.readouterr().out
    assert re.search(r"^    waiting for the api-server \(\d+ s\)$", seen, re.M), seen
    capsys.readouterr()
    time.sleep(0.3)  # six intervals: a heartbeat that outlived its block would print here
    assert capsys.readouterr().out == ""


DEMO_WARNINGS_SCRIPT = """
import sys, warnings
from airflow_provider_mlops.demo import quiet_third_party_warnings
quiet = sys.argv[1] == "quiet"
if quiet:
    quiet_third_party_warnings()
from airflow.dag_processing.dagbag import DagBag
import fastapi.testclient  # starlette's deprecation of httpx in its test client
if quiet:
    quiet_third_party_warnings()
DagBag(sys.argv[2])  # Airflow's file discovery uses pathspec's deprecated 'gitwildmatch'
warnings.warn_explicit("mlops-own-deprecation", DeprecationWarning, "demo.py", 1, module="airflow_provider_mlops.demo")
print("done")
"""


def _run_with_airflow(mode: str, tmp_path: Path) -> str:
    home = tmp_path / mode
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_", "PYTHONWARNINGS"))}
    env.update({"AIRFLOW_HOME": str(home), "MLOPS_CONFIG_PATH": str(REPO / "examples"), "MLOPS_HOME": str(home / "mlops"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"})
    result = subprocess.run([sys.executable, "-c", DEMO_WARNINGS_SCRIPT, mode, str(REPO / "dags")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "done" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def test_the_demo_hides_third_party_deprecation_warnings_but_not_its_own(tmp_path: Path) -> None:
    loud = _run_with_airflow("loud", tmp_path)
    # The control: without the filters Airflow's dependencies do warn (else this test proves nothing).
    assert "gitwildmatch" in loud and "starlette.testclient" in loud, loud[-3000:]
    quiet = _run_with_airflow("quiet", tmp_path)
    assert "gitwildmatch" not in quiet and "starlette.testclient" not in quiet, quiet[-3000:]
    assert "mlops-own-deprecation" in quiet, quiet[-3000:]
