"""
Run one local job and record how it ended: ``python -m ... <run dir>``.

Started detached by :class:`LocalComputeBackend`; it writes ``status.json`` when the job starts
and when it ends, so a re-attached task reads the exit status of a process it did not start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from airflow_provider_mlops._proc import write_json_atomic
from airflow_provider_mlops.backends.local import RUNNER_PATH_ENV, command_for


def child_env(runner_env: dict[str, str], declared: dict[str, str]) -> dict[str, str]:
    """The job's environment: the runner's, without the path the runner alone needed to import this package."""
    env = dict(runner_env)
    env.pop(RUNNER_PATH_ENV, None)
    if "PYTHONPATH" in declared:
        env["PYTHONPATH"] = declared["PYTHONPATH"]
    else:
        env.pop("PYTHONPATH", None)
    return env


def main(run_dir_arg: str) -> int:
    run_dir = Path(run_dir_arg)
    spec = json.loads((run_dir / "spec.json").read_text())
    write_json_atomic(run_dir / "status.json", {"status": "InProgress"})
    args: list[str] = []
    for key, value in spec.get("hyperparameters", {}).items():
        args += [f"--{key}", str(value)]
    # Same process group (a stop signals the whole group); stdout and stderr are the job's log.
    child = subprocess.Popen(command_for(spec["entrypoint"]) + args, stdin=subprocess.DEVNULL, close_fds=True,
                             env=child_env(dict(os.environ), spec.get("environment") or {}))

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    code = child.wait()
    current = json.loads((run_dir / "status.json").read_text())
    if current.get("status") == "Stopped":
        return code
    if code == 0:
        write_json_atomic(run_dir / "status.json", {"status": "Completed", "exit_code": 0})
    else:
        write_json_atomic(
            run_dir / "status.json",
            {"status": "Failed", "exit_code": code, "failure_reason": f"the entrypoint exited with code {code}"},
        )
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
