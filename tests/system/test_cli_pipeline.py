"""
``mlops retrain | rollback | promote`` through a real ``airflow api-server`` (issue 16, part 4).

The model's DAGs are written to the metadata DB as the DAG processor would; the CLI creates the
runs over REST, and each test reads the run back from the api-server: the right DAG, the conf the
DAG validates (the release, or ``model_version``) and ``requested_by`` naming the Airflow user.
A version the deploy DAG would refuse is refused before any run is created.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from system_helpers import serialize_dag

from airflow_provider_mlops import cli
from airflow_provider_mlops.airflow_api import ApiServer, run_api_server
from airflow_provider_mlops.registry.base import APPROVED, REJECTED
from airflow_provider_mlops.registry.local import LocalModelRegistry

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.system
GROUP = "demo--cli-pipeline"
TRAIN, DEPLOY = "mlops__demo__cli-pipeline__train", "mlops__demo__cli-pipeline__deploy"
RELEASE = {"project": "demo", "model": "cli-pipeline", "version": "1.0.42",
           "image": "registry.example/demo/cli-pipeline:1.0.42", "commit": "3f2a9c1d"}


def _model(root: Path) -> tuple[Path, dict[str, Any]]:
    """The breast-cancer example as demo/cli-pipeline, its DAGs in the metadata DB, CI's release.json beside it."""
    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.factory.plan import plan_model
    from airflow_provider_mlops.factory.render import render_dag

    folder = root / "cli-pipeline"
    shutil.copytree(REPO / "examples" / "breast-cancer", folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((folder / "mlops.yaml").read_text())
    config["model"] = "cli-pipeline"
    (folder / "mlops.yaml").write_text(yaml.safe_dump(config))
    (folder / "release.json").write_text(json.dumps(RELEASE))
    dags = {spec.kind: render_dag(spec) for spec in plan_model(load_config(folder / "mlops.yaml", root=root), str(root))}
    for dag in dags.values():
        serialize_dag(dag)
    return folder / "mlops.yaml", dags


def _versions(home: Path) -> None:
    """1.0.0 and 1.0.1 were in production (1.0.1 now), 1.0.2 failed its gate, 1.0.3 passed and waits."""
    registry = LocalModelRegistry(home)
    passed, failed = {"passed": True, "rows": []}, {"passed": False, "rows": [{"metric": "f1", "passed": False}]}
    for key, gate in (("a", passed), ("b", passed), ("c", failed), ("d", passed)):
        registry.register(GROUP, "1.0", idempotency_key=key, artifact_uri=f"/m/{key}", metrics={"f1": 0.9},
                          gate=gate, lineage={"image_version": "1.0.41"})
    for semver in ("1.0.0", "1.0.1"):
        registry.set_approval(GROUP, semver, APPROVED, by="carol", reason="reviewed")
        registry.promote(GROUP, semver, deployment={"endpoint": GROUP, "url": "http://127.0.0.1:1", "by": "carol"})
    registry.set_approval(GROUP, "1.0.2", REJECTED, by="gate", reason="f1 below 0.9")


@pytest.fixture(scope="module")
def airflow(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, Any]]:
    """One api-server for the module (its start is the slow part); the registry and config are the module's own."""
    tmp = tmp_path_factory.mktemp("cli-pipeline")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLOPS_HOME", str(tmp / "mlops-home"))
        config, dags = _model(tmp / "models")
        _versions(tmp / "mlops-home")
        monkeypatch.setenv("MLOPS_CONFIG_PATH", str(config.parent.parent))
        with run_api_server(airflow_db, username="alice") as server:  # stopped by its pid on exit, also on failure
            for key, value in (("MLOPS_AIRFLOW_API_URL", server.base_url), ("MLOPS_AIRFLOW_USERNAME", "alice"),
                               ("MLOPS_AIRFLOW_PASSWORD", server.passwords["alice"])):
                monkeypatch.setenv(key, value)
            yield server, dags


def _started(server: ApiServer, dag: str, out: str) -> dict[str, Any]:
    """The run the CLI's output names, read back from the api-server; the link points at it."""
    match = re.search(rf"started {dag} run (\S+)", out)
    assert match, out
    assert f"{server.base_url}/dags/{dag}/runs/" in out
    return server.client().get_dag_run(dag, match[1])


def _runs(server: ApiServer, dag: str) -> int:
    return int(server.client().request("GET", f"/api/v2/dags/{dag}/dagRuns")["total_entries"])


def test_retrain_rollback_and_promote_start_runs_with_the_right_conf(
    airflow: tuple[ApiServer, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    server, _dags = airflow
    capsys.readouterr()

    assert cli.main(["retrain", "demo/cli-pipeline"]) == 0
    run = _started(server, TRAIN, capsys.readouterr().out)
    assert run["conf"] == {"requested_by": "mlops-cli:alice", "version": "1.0.42", "image": RELEASE["image"],
                           "commit": RELEASE["commit"]}

    assert cli.main(["rollback", "demo/cli-pipeline"]) == 0  # production 1.0.1: back to 1.0.0
    run = _started(server, DEPLOY, capsys.readouterr().out)
    assert run["conf"] == {"model_version": "1.0.0", "requested_by": "mlops-cli:alice"}

    assert cli.main(["promote", "demo/cli-pipeline", "1.0.3"]) == 0
    run = _started(server, DEPLOY, capsys.readouterr().out)
    assert run["conf"] == {"model_version": "1.0.3", "requested_by": "mlops-cli:alice"}
    assert _runs(server, DEPLOY) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["promote", "demo/cli-pipeline", "1.0.2"], "failed its evaluation gate"),
        (["rollback", "demo/cli-pipeline", "1.0.3"], "was never in production"),
        (["promote", "demo/cli-pipeline", "1.0.1"], "is already in production"),
        (["promote", "demo/cli-pipeline", "1.0.9"], "has no version 1.0.9 (versions: 1.0.0, 1.0.1, 1.0.2, 1.0.3)"),
    ],
)
def test_a_version_the_deploy_dag_would_refuse_starts_no_run(
    argv: list[str], message: str, airflow: tuple[ApiServer, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    server, _dags = airflow
    before = _runs(server, DEPLOY)
    capsys.readouterr()
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlops: error: ") and message in err and len(err.splitlines()) == 1, err
    assert _runs(server, DEPLOY) == before


def test_a_rejection_in_airflow_prints_rejected(airflow: tuple[ApiServer, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's answer to a waiting deploy run says "Rejected" (it printed "Rejectd")."""
    server, dags = airflow
    answers: list[int] = []
    errors: list[BaseException] = []

    def reject_when_waiting() -> None:
        try:
            deadline = time.monotonic() + 120
            while not server.client().pending_approvals(DEPLOY):
                assert time.monotonic() < deadline, "no approval request appeared"
                time.sleep(0.3)
            answers.append(cli.main(["reject", "demo/cli-pipeline", "1.0.3", "--reason", "drift on site B"]))
        except BaseException as exc:  # surfaced by the test thread
            errors.append(exc)

    thread = threading.Thread(target=reject_when_waiting)
    thread.start()
    run = dags["deploy"].test(run_conf={"model_version": "1.0.3"})
    thread.join(timeout=60)
    assert not errors and answers == [0], (errors, answers)
    assert str(run.state) == "success"
    out = capsys.readouterr().out
    assert f"Rejected {GROUP} 1.0.3 in Airflow run" in out and "as alice: drift on site B" in out, out
    assert "Rejectd" not in out
