"""
A run is pinned to one config (issue 13), on real Airflow 3.3 (dag.test on SQLite) and the local
backend: a config published while a run is in flight changes nothing in it, and a task whose
run's snapshot is gone fails with a message that says how to recover, instead of re-reading.
"""

from __future__ import annotations

import logging
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from system_helpers import serialize_dag

from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.config.snapshot import short_digest
from airflow_provider_mlops.operators.base import CONFIG_SNAPSHOT_KEY
from airflow_provider_mlops.registry.base import PENDING

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.system

#: The training entrypoint of the copied model: trains as the example does, then publishes the
#: next config over mlops.yaml (atomically, as CI's publish job does) while the run is in flight.
TRAIN_THEN_PUBLISH = textwrap.dedent(
    """
    import os, runpy, sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    sys.argv = [str(here / "train.py"), *sys.argv[1:]]
    runpy.run_path(str(here / "train.py"), run_name="__main__")
    os.replace(here / "next-mlops.yaml", here / "mlops.yaml")
    print("published the next mlops.yaml")
    """
)


def _model(tmp_path: Path, name: str) -> tuple[Path, dict[str, Any]]:
    """The breast-cancer example as demo/<name>, under an organisation defaults layer; its DAGs, serialized."""
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    root = tmp_path / "models"
    model = root / name
    shutil.copytree(REPO / "examples" / "breast-cancer", model, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "examples" / "mlops-defaults.yaml", root / "mlops-defaults.yaml")
    config = yaml.safe_load((model / "mlops.yaml").read_text())
    config["model"] = name  # DAG ids and a registry group of its own
    config["training"]["entrypoint"] = "train_then_publish.py"
    (model / "mlops.yaml").write_text(yaml.safe_dump(config))
    (model / "train_then_publish.py").write_text(TRAIN_THEN_PUBLISH)
    dags = {spec.kind: render_dag(spec) for spec in plan_model(load_config(model / "mlops.yaml", root=root), str(root))}
    for dag in dags.values():
        serialize_dag(dag)
    return model / "mlops.yaml", dags


def _publish_next(config: Path, change: dict[str, Any]) -> None:
    """What the training job will publish over mlops.yaml: the current config with ``change`` applied."""
    data = yaml.safe_load(config.read_text())
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[last] = value
    (config.parent / "next-mlops.yaml").write_text(yaml.safe_dump(data))


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _xcom(run: Any, task_id: str, key: str = "return_value") -> Any:
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


@pytest.fixture
def task_logs(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """
    What the provider's operators log at INFO and up, read after the run.

    The test session logs at WARNING (tests/conftest.py); Airflow's per-logger levels (its
    ``[logging] namespace_levels``, read once per process) lower it for this provider's operators.
    """
    from airflow._shared.logging.structlog import PER_LOGGER_LEVELS

    monkeypatch.setitem(PER_LOGGER_LEVELS, "airflow.task.operators.airflow_provider_mlops", logging.INFO)
    capfd.readouterr()
    return lambda: "".join(capfd.readouterr())


def test_a_config_published_mid_run_changes_nothing_in_it(
    airflow_db: Path, mlops_home: Path, tmp_path: Path, task_logs: Any
) -> None:
    config, dags = _model(tmp_path, "pinned")
    started = load_config(config, root=config.parent.parent)
    assert started.layers, "the run's config has a defaults layer, which the snapshot must carry"
    # While training runs, a config that would fail this candidate's gate and train differently is published.
    _publish_next(config, {"evaluation.gate.f1.min": 0.999, "training.hyperparameters.C": 0.05,
                           "description": "published mid-run"})

    run = dags["train"].test(run_conf={"requested_by": "pytest"})
    logs = task_logs()
    states = _states(run)
    assert str(run.state) == "success", states
    published = load_config(config, root=config.parent.parent)
    assert published.config.evaluation.gate["f1"].min == 0.999 and published.digest != started.digest, (
        "the training job did not publish the next config: this test would prove nothing"
    )

    # The gate, the registration and its lineage use the config the run started with.
    gate = _xcom(run, "gate")
    f1 = next(row for row in gate["rows"] if row["metric"] == "f1")
    assert gate["passed"] and any(check["rule"] == ">= 0.9" for check in f1["checks"]), gate
    record = _xcom(run, "register")
    assert record["status"] == PENDING and record["gate"]["passed"], record
    assert record["lineage"]["config_digest"] == started.digest
    assert record["lineage"]["hyperparameters"]["C"] == 1.0
    assert _xcom(run, "train")["hyperparameters"]["C"] == 1.0

    # The first task pinned it; every task, and train resuming after its deferral, names the digest.
    snapshot = _xcom(run, "train", CONFIG_SNAPSHOT_KEY)
    assert snapshot["digest"] == started.digest and snapshot["pinned_by"] == "train"
    line = f"config {config} {short_digest(started.digest)} (pinned by train at {snapshot['pinned_at']})"
    assert logs.count(line) >= len(states) + 1, logs[-5000:]  # + 1: train logs it again when it resumes
    assert short_digest(published.digest) not in logs
    for task_id in states:
        if task_id != "train":
            assert _xcom(run, task_id, CONFIG_SNAPSHOT_KEY) is None, f"{task_id} pushed a second snapshot"


def test_a_later_task_whose_snapshot_is_gone_fails_with_how_to_recover(
    airflow_db: Path, mlops_home: Path, tmp_path: Path, task_logs: Any
) -> None:
    from airflow.sdk.execution_time.xcom import XCom

    config, dags = _model(tmp_path, "unpinned")
    _publish_next(config, {"evaluation.gate.f1.min": 0.999})
    dag = dags["train"]

    def lose_the_snapshot(context: Any) -> None:
        """As an XCom cleanup (or an upgrade mid-run) would: the first task's snapshot is gone."""
        ti = context["ti"]
        XCom.delete(key=CONFIG_SNAPSHOT_KEY, task_id="train", dag_id=ti.dag_id, run_id=ti.run_id)

    dag.get_task("gate")._pre_execute_hook = lose_the_snapshot
    run = dag.test(run_conf={"requested_by": "pytest"})
    logs = task_logs()
    states = _states(run)
    assert states["train"] == states["evaluate"] == "success", states
    assert states["gate"] == "failed" and states["register"] == "upstream_failed", states
    assert run.get_task_instance("gate").try_number == 1, "no retry can bring the snapshot back: it fails at once"
    message = (f"{config}: task gate of run {run.run_id} of {dag.dag_id} found no snapshot of the config the run "
               f"started with (XCom '{CONFIG_SNAPSHOT_KEY}'), although its upstream task(s) train, evaluate already "
               "ran with it; the file is not read again, because it may have changed since. Fix: clear the run "
               f"{run.run_id} of {dag.dag_id} from its first task (train) with its downstream tasks")
    assert message in logs, logs[-5000:]
