"""
The seed pipeline end to end on the real Airflow runtime, driven by the repository's own scripts:

    GitLab job scripts (prepare, package, publish, trigger-train)  ->  trigger Lambda
    -> scheduler: train (deferred to the triggerer), evaluate, gate, register
    -> the manual `deploy` CI job  ->  approval in a real browser (Chromium)
    -> deploy, smoke test, promote  ->  scheduled retrain with the released image
    -> failure paths: a gate-failed release refused at deploy, a failing training on Slack.

The tests run in file order and build on each other (one model's life); each step's duration
is printed at the end of the session. Stand-ins, because they cannot run here: the docker CLI
(tests/ci/fake_docker.py pushes manifests to moto's ECR) and GitLab's artifacts API (loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from browser import ui
from runtime_env import (
    APPROVER,
    GROUP,
    MODEL,
    OUTSIDER,
    PROJECT,
    AirflowApiError,
    World,
    invoke,
    read_dotenv,
    timed,
)

pytestmark = pytest.mark.runtime

STATE: dict[str, Any] = {}


def _first_pipeline(world: World) -> tuple[Path, dict[str, str]]:
    if "first" not in STATE:
        pytest.fail("the first model pipeline did not run (see the first test's failure)")
    return STATE["first"]


def only_alice_approves(repo: Path) -> None:
    config = repo / "mlops.yaml"
    config.write_text(config.read_text().replace("  approval: manual\n", f"  approval: manual\n  approvers: [{APPROVER}]\n"))


def test_ci_publishes_and_triggers_one_training_and_the_schedule_trains_nothing(world: World) -> None:
    repo = world.model_repo("first", only_alice_approves)
    with timed("CI: prepare, package, publish (job scripts)"):
        workdir, env = world.run_model_pipeline(repo, iid=7)
    STATE["first"] = (workdir, env)
    assert env["MLOPS_VERSION"] == "1.0.7"
    # What the config references travelled with it: the local backend runs it on the worker.
    for name in ("mlops.yaml", "release.json", "train.py", "evaluate.py", "inference.py", "smoke_payload.json"):
        assert (world.published / "demo" / "breast-cancer" / name).is_file(), name
    with timed("CI: trigger-train (Lambda -> api-server), DAG parsed by the dag-processor"):
        world.ci_job("trigger.sh", "train", "train.env", workdir=workdir, env=env)
    train = read_dotenv(workdir / "train.env")
    STATE["train_run"] = train["MLOPS_DAG_RUN_ID"]

    # The retrain DAG is unpaused at creation with a cron schedule: the scheduler runs its latest
    # interval at once. With no version registered it must decide not to train.
    world.wait_dag("retrain")
    deadline = time.monotonic() + 90
    while not world.runs("retrain") and time.monotonic() < deadline:
        time.sleep(1)
    for run in world.runs("retrain"):
        world.wait_run("retrain", run["dag_run_id"], timeout=120)
        states = world.ti_states("retrain", run["dag_run_id"])
        assert states["trigger_train"] == "skipped", states
        assert states["skip_retrain"] == "success", states
    train_runs = world.runs("train")
    assert [r["dag_run_id"] for r in train_runs] == [STATE["train_run"]], "only CI's trigger may train"


def test_training_defers_to_the_triggerer_and_registers_the_release(world: World) -> None:
    workdir, env = _first_pipeline(world)
    run_id = STATE["train_run"]
    with timed("train DAG through the scheduler (train, evaluate, gate, register, notify)"):
        run = world.wait_run("train", run_id, timeout=300)
    states = world.ti_states("train", run_id)
    assert run["state"] == "success", states
    assert states["gate_passed"] == "success", states
    logs = world.task_logs("train", run_id, "train")
    trigger_logs = {name: text for name, text in logs.items() if ".trigger." in name}
    assert trigger_logs, f"the training job never deferred to the triggerer: {sorted(logs)}"
    assert any("Trigger fired event" in text or "InProgress" in text for text in trigger_logs.values()), trigger_logs
    version = world.registry().get(GROUP, "1.0.0")
    assert version.gate["passed"] is True
    assert version.lineage["image_version"] == env["MLOPS_VERSION"]
    assert version.lineage["image"] == env["MLOPS_IMAGE"]
    assert version.lineage["commit"] == env["MLOPS_COMMIT"]


def test_the_ci_deploy_job_parks_the_deploy_run_for_approval(world: World) -> None:
    workdir, env = _first_pipeline(world)
    with timed("CI: manual deploy job (Lambda -> deploy DAG) until awaiting_input"):
        world.ci_job("trigger.sh", "deploy", "deploy.env", workdir=workdir, env=env)
        run_id = read_dotenv(workdir / "deploy.env")["MLOPS_DAG_RUN_ID"]
        world.wait_task("deploy", run_id, "approve", "awaiting_input", timeout=240)
    STATE["deploy_run"] = run_id
    resolved = world.task_instances("deploy", run_id)["resolve_version"]
    assert resolved["state"] == "success"


def test_only_an_allowed_approver_can_approve_in_the_airflow_ui(world: World, tmp_path: Path) -> None:
    run_id = STATE.get("deploy_run") or pytest.fail("no deploy run waits (see the test before)")
    dag = world.dag_id("deploy")
    with timed("browser: carol (not an approver) tries to approve"), \
            ui(world.airflow.base_url, world.airflow.passwords[OUTSIDER], tmp_path / "outsider", user=OUTSIDER) as page:
        page.approve(dag, run_id, expect="1.0.0", reason="looks fine to me", shot="-carol")
        assert "Access Denied" in page.after_text, page.after_text[-1500:]
    time.sleep(3)
    assert world.task_instances("deploy", run_id)["approve"]["state"] == "awaiting_input", "carol's answer was refused"
    assert world.registry().get(GROUP, "1.0.0").approval.get("by") != OUTSIDER
    with pytest.raises(AirflowApiError) as refused:  # the API refuses her too, whatever the UI shows
        world.api(OUTSIDER).respond(dag, run_id, "approve", "Approve")
    assert refused.value.status == 403, refused.value

    reason = "gate table reviewed: f1 0.99, first model"
    with timed("browser: alice logs in, reads the Required Action, approves with a reason"), \
            ui(world.airflow.base_url, world.airflow.passwords[APPROVER], tmp_path / "approver", user=APPROVER) as page:
        shown = page.approve(dag, run_id, expect="1.0.0", reason=reason)
    assert GROUP in shown and "Gate: PASSED" in shown, shown[:2000]
    assert "f1" in shown and "0.98" in shown, "the gate table is shown to the approver"
    STATE["reason"] = reason


def test_the_approved_version_serves_the_smoke_payload_and_is_in_production(world: World) -> None:
    run_id = STATE.get("deploy_run") or pytest.fail("no deploy run (see the tests before)")
    with timed("deploy DAG after approval (deploy, smoke_test, promote, notify)"):
        run = world.wait_run("deploy", run_id, timeout=240)
    assert run["state"] == "success", world.ti_states("deploy", run_id)
    version = world.registry().get(GROUP, "1.0.0")
    assert version.stage == "production"
    assert (version.approval["by"], version.approval["reason"]) == (APPROVER, STATE["reason"])
    audit = subprocess.run(
        [str(Path(sys.executable).with_name("mlops")), "audit", f"{PROJECT}/{MODEL}", "--json", "--config", world.config_file()],
        env={**os.environ, "MLOPS_HOME": str(world.airflow.mlops_home)}, capture_output=True, text=True, timeout=60,
    )
    assert audit.returncode == 0, audit.stderr
    events = json.loads(audit.stdout)
    approved = [e for e in events if e.get("kind") == "approved"]
    assert approved and approved[-1]["by"] == APPROVER and approved[-1]["reason"] == STATE["reason"], events
    assert {"deployed", "promoted"} <= {e.get("kind") for e in events}, events
    endpoint = json.loads((world.airflow.mlops_home / "endpoints" / GROUP / "router.json").read_text())
    payload = (world.published / "demo" / "breast-cancer" / "smoke_payload.json").read_bytes()
    status, body = invoke(f"http://127.0.0.1:{endpoint['port']}", payload)
    assert status == 200 and b"predictions" in body
    # The model server the deploy started inherits no socket: the task ends with its work.
    deploy_log = "\n".join(world.task_logs("deploy", run_id, "deploy").values())
    assert "open sockets" not in deploy_log, deploy_log[-2000:]


def test_the_scheduled_retrain_trains_the_released_image(world: World) -> None:
    workdir, env = _first_pipeline(world)
    # New data arrives (MWAA syncs it with the model's folder): the decision is to retrain.
    data = world.published / "demo" / "breast-cancer" / "data" / "train" / "train.csv"
    os.utime(data)
    before = {r["dag_run_id"] for r in world.runs("train")}
    with timed("retrain DAG (decide -> trigger_train) and the train run it starts"):
        run = world.api().trigger_dag_run(world.dag_id("retrain"), "retrain-by-test", {})
        world.wait_run("retrain", run["dag_run_id"], timeout=120)
        states = world.ti_states("retrain", run["dag_run_id"])
        assert states["trigger_train"] == "success", states
        started = [r for r in world.runs("train") if r["dag_run_id"] not in before]
        assert len(started) == 1, started
        train_run = world.wait_run("train", started[0]["dag_run_id"], timeout=300)
    assert train_run["state"] == "success", world.ti_states("train", train_run["dag_run_id"])
    assert {k: train_run["conf"].get(k) for k in ("image", "version", "commit")} == {
        "image": env["MLOPS_IMAGE"], "version": env["MLOPS_VERSION"], "commit": env["MLOPS_COMMIT"]}
    newest = world.registry().latest(GROUP)
    assert newest.semver == "1.0.1"
    assert newest.lineage["image"] == env["MLOPS_IMAGE"]
    assert newest.lineage["requested_by"] == "retrain-schedule"


def test_a_release_that_failed_its_gate_is_refused_by_the_ci_deploy_job(world: World) -> None:
    def underfit(repo: Path) -> None:
        config = repo / "mlops.yaml"
        config.write_text(config.read_text().replace("C: 1.0", "C: 0.00005"))

    repo = world.model_repo("underfit", underfit)
    with timed("CI pipeline 8 (underfit model): publish, train, gate FAIL"):
        workdir, env = world.run_model_pipeline(repo, iid=8)
        world.ci_job("trigger.sh", "train", "train.env", workdir=workdir, env=env)
        run_id = read_dotenv(workdir / "train.env")["MLOPS_DAG_RUN_ID"]
        run = world.wait_run("train", run_id, timeout=300)
    states = world.ti_states("train", run_id)
    assert run["state"] == "success", states
    assert states["gate_passed"] == "skipped", f"a failed gate must show in the Grid: {states}"
    rejected = world.registry().latest(GROUP)
    assert rejected.status == "Rejected" and rejected.gate["passed"] is False
    assert rejected.lineage["image_version"] == "1.0.8"

    env["MLOPS_TRIGGER_WAIT_FOR_RESULT"] = "true"  # as .gitlab-ci.yml's deploy job sets it
    env["MLOPS_TRIGGER_POLL_SECONDS"] = "2"
    with timed("CI: deploy job for the gate-failed release, until refused"):
        deploy = world.ci_job("trigger.sh", "deploy", "deploy.env", workdir=workdir, env=env, check=False)
    assert deploy.returncode != 0, deploy.output
    assert "gate" in deploy.output and "1.0.8" in deploy.output, deploy.output[-3000:]
    assert f"{world.airflow.base_url}/dags/{world.dag_id('deploy')}/runs/" in deploy.output
    refused = read_dotenv(workdir / "deploy.env")["MLOPS_DAG_RUN_ID"]
    resolve = world.task_instances("deploy", refused)["resolve_version"]
    assert (resolve["state"], resolve["try_number"]) == ("failed", 1), "a refusal no retry can fix fails at once"
    assert world.registry().production(GROUP).semver == "1.0.0"


def test_an_unanswered_approval_expires_as_rejected_and_is_notified(world: World) -> None:
    def expire_fast(repo: Path) -> None:
        only_alice_approves(repo)
        config = repo / "mlops.yaml"
        config.write_text(config.read_text().replace("  approval: manual\n", "  approval: manual\n  approval_timeout: 20s\n"))

    repo = world.model_repo("expiring", expire_fast)
    with timed("CI pipeline 10 (approval_timeout 20s): publish, train"):
        workdir, env = world.run_model_pipeline(repo, iid=10)
        world.ci_job("trigger.sh", "train", "train.env", workdir=workdir, env=env)
        train_run = read_dotenv(workdir / "train.env")["MLOPS_DAG_RUN_ID"]
        assert world.wait_run("train", train_run, timeout=300)["state"] == "success"
    before = len(world.slack.requests)
    env.update(MLOPS_TRIGGER_WAIT_FOR_RESULT="true", MLOPS_TRIGGER_POLL_SECONDS="2")
    with timed("deploy run: nobody answers, the request expires (20 s)"):
        waiting = world.ci_job("trigger.sh", "deploy", "deploy.env", workdir=workdir, env=env)
        assert "waiting for approval" in waiting.output, waiting.output[-2000:]
        deploy_run = read_dotenv(workdir / "deploy.env")["MLOPS_DAG_RUN_ID"]
        world.wait_run("deploy", deploy_run, timeout=180)
    states = world.ti_states("deploy", deploy_run)
    assert states["deploy"] == "skipped", states
    [version] = [v for v in world.registry().list_versions(GROUP) if v.lineage.get("image_version") == "1.0.10"]
    assert version.status == "Rejected", version
    assert (version.approval["by"], version.approval["reason"]) == ("airflow", "expired"), version.approval
    notified = [r.body for r in world.slack.requests[before:]]
    assert any(b"expired" in body for body in notified), notified
    assert world.registry().production(GROUP).semver == "1.0.0"


def test_a_failing_training_reaches_slack_and_fails_the_ci_job_with_the_run_link(world: World) -> None:
    def crash(repo: Path) -> None:
        (repo / "train.py").write_text("raise SystemExit('the training code has a bug')\n")

    repo = world.model_repo("broken", crash)
    before = len(world.slack.requests)
    with timed("CI pipeline 9 (broken training): trigger-train until the run fails"):
        workdir, env = world.run_model_pipeline(repo, iid=9)
        env["MLOPS_TRIGGER_WAIT_FOR_RESULT"] = "true"  # as .gitlab-ci.yml's trigger-train job sets it
        env["MLOPS_TRIGGER_POLL_SECONDS"] = "2"
        result = world.ci_job("trigger.sh", "train", "train.env", workdir=workdir, env=env, check=False, timeout=600)
    assert result.returncode != 0, result.output
    assert f"{world.airflow.base_url}/dags/{world.dag_id('train')}/runs/" in result.output, result.output[-3000:]
    failures = [r for r in world.slack.requests[before:] if b"fail" in r.body.lower()]
    assert failures, [r.body[:300] for r in world.slack.requests[before:]]
    assert b"train" in failures[-1].body
    assert b"xoxWebhookSecretToken42" not in b"".join(r.body for r in world.slack.requests)

