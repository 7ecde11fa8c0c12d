"""
A failing entrypoint's last output lines in the Airflow task log, on the real runtime: a copy of
the example whose train.py prints marker lines then raises is published by the CI scripts, its
train DAG runs through the scheduler (the job deferred to the triggerer), and the train task's
log, read over the REST API as the UI reads it, shows the markers and the traceback's last line.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest
from runtime_env import World, read_dotenv, timed

pytestmark = pytest.mark.runtime

FAILING_TRAIN = """\
import sys
for step in range(3):
    print(f"marker-line-{step}: preparing the data", flush=True)
raise RuntimeError("marker-failure: the label column is missing")
"""


def test_a_failing_entrypoints_last_lines_are_in_the_task_log(world: World) -> None:
    def fail_loudly(repo: Path) -> None:
        (repo / "train.py").write_text(FAILING_TRAIN)

    repo = world.model_repo("task-logs", fail_loudly)
    with timed("task logs: publish, trigger a failing training, wait for the run"):
        workdir, env = world.run_model_pipeline(repo, iid=31)
        world.ci_job("trigger.sh", "train", "train.env", workdir=workdir, env=env)
        run_id = read_dotenv(workdir / "train.env")["MLOPS_DAG_RUN_ID"]
        run = world.wait_run("train", run_id, timeout=420)
    assert run["state"] == "failed", world.ti_states("train", run_id)

    path = (f"/api/v2/dags/{world.dag_id('train')}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
            "/taskInstances/train/logs/1?full_content=true")
    payload = world.api().request("GET", path)
    text = json.dumps(payload.get("content", payload))
    for marker in ("marker-line-0: preparing the data", "marker-line-2: preparing the data",
                   "RuntimeError: marker-failure: the label column is missing"):
        assert marker in text, f"{marker!r} is not in the train task's log:\n{text[-4000:]}"
