"""
trigger.sh with MLOPS_TRIGGER_WAIT_FOR_RESULT=true: the job reports the run's outcome.

Real: bash, scripts/ci/trigger.sh and run_status.py, the trigger Lambda's handler (called
in-process, as ``ci_aws.py invoke`` calls it in tests) and the real api-server of
tests/lambda/trigger_testenv.py. That stack has no scheduler, so runs stay queued: the wait times
out. tests/lambda/status_testenv.py moves a run to failed, success or awaiting approval the way
Airflow leaves it, so the other outcomes are checked here too; the runtime suite runs them for real.
"""

from __future__ import annotations

import pytest
from ci_testenv import REPO, SCRIPTS, read_dotenv, run_script
from status_testenv import await_approval, fail_run, succeed_run
from trigger_testenv import COMMIT, ECR_REGISTRY, MODEL, PROJECT


def trigger_env(env, airflow_stack, version, **extra):
    """What trigger.sh reads in the trigger-train/deploy jobs (version.env, package.env), for ``version``."""
    env.update(
        airflow_stack.lambda_env(),
        MLOPS_TRIGGER_LOCAL_HANDLER=str(REPO / "lambda"),
        MLOPS_PROJECT=PROJECT,
        MLOPS_MODEL=MODEL,
        MLOPS_VERSION=version,
        MLOPS_IMAGE=f"{ECR_REGISTRY}/{PROJECT}/{MODEL}:{version}",
        MLOPS_COMMIT=COMMIT,
        **extra,
    )
    return env


def waiting(**extra):
    return {
        "MLOPS_TRIGGER_WAIT_FOR_RESULT": "true",
        "MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS": "3",
        "MLOPS_TRIGGER_POLL_SECONDS": "1",
        **extra,
    }


def run_url(airflow_stack, dotenv):
    values = read_dotenv(dotenv)
    return f"{airflow_stack.base_url}/dags/{values['MLOPS_DAG_ID']}/runs/{values['MLOPS_DAG_RUN_ID']}"


@pytest.mark.parametrize("action", ["train", "deploy"])
def test_a_queued_run_times_out_with_its_link(job, airflow_stack, action):
    workdir, env = job
    trigger_env(env, airflow_stack, "5.0.1", **waiting())
    result = run_script("trigger.sh", action, f"{action}.env", env=env, cwd=workdir, timeout=60)
    assert result.returncode == 1, result.output
    assert "timed out after" in result.output
    assert run_url(airflow_stack, workdir / f"{action}.env") in result.output
    assert f"until {'approval' if action == 'deploy' else 'finished'}" in result.output
    assert ": queued" in result.output


def test_a_failed_run_fails_the_job_with_each_failed_task_and_its_log(job, airflow_stack):
    workdir, env = job
    trigger_env(env, airflow_stack, "5.0.2")
    assert run_script("trigger.sh", "train", "train.env", env=env, cwd=workdir).returncode == 0
    started = read_dotenv(workdir / "train.env")
    task_id = fail_run(airflow_stack, started["MLOPS_DAG_ID"], started["MLOPS_DAG_RUN_ID"])

    env.update(waiting(MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS="30"))
    result = run_script("trigger.sh", "train", "train.env", env=env, cwd=workdir, timeout=60)
    assert result.returncode == 1, result.output
    assert f"run failed: {run_url(airflow_stack, workdir / 'train.env')}" in result.output
    assert f"task {task_id} failed (try 1)" in result.output
    assert (
        "| TrainingFailedError: training job demo-breast-cancer-train-1 failed: ValueError: boom"
        in result.output
    )
    assert "\x1b" not in result.output and "timed out" not in result.output


def test_a_successful_run_passes_the_job(job, airflow_stack):
    workdir, env = job
    trigger_env(env, airflow_stack, "5.0.3")
    assert run_script("trigger.sh", "train", "train.env", env=env, cwd=workdir).returncode == 0
    started = read_dotenv(workdir / "train.env")
    succeed_run(airflow_stack, started["MLOPS_DAG_ID"], started["MLOPS_DAG_RUN_ID"])

    env.update(waiting(MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS="30"))
    result = run_script("trigger.sh", "train", "train.env", env=env, cwd=workdir, timeout=60)
    assert result.returncode == 0, result.output
    assert f"run succeeded: {run_url(airflow_stack, workdir / 'train.env')}" in result.output


def test_deploy_ends_when_the_run_waits_for_approval(job, airflow_stack):
    workdir, env = job
    trigger_env(env, airflow_stack, "5.0.4")
    assert run_script("trigger.sh", "deploy", "deploy.env", env=env, cwd=workdir).returncode == 0
    started = read_dotenv(workdir / "deploy.env")
    task_id = await_approval(airflow_stack, started["MLOPS_DAG_ID"], started["MLOPS_DAG_RUN_ID"])

    env.update(waiting(MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS="30"))
    result = run_script("trigger.sh", "deploy", "deploy.env", env=env, cwd=workdir, timeout=60)
    assert result.returncode == 0, result.output
    url = run_url(airflow_stack, workdir / "deploy.env")
    assert f"waiting for approval: {url}" in result.output
    assert f"{url}/tasks/{task_id}/required_actions" in result.output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS", "a[$(touch pwned)]"),
        ("MLOPS_TRIGGER_POLL_SECONDS", "1.5"),
        ("MLOPS_TRIGGER_POLL_SECONDS", "0"),
        ("MLOPS_TRIGGER_WAIT_FOR_RESULT", "yes"),
    ],
)
def test_wait_settings_are_checked_before_any_run_starts(job, airflow_stack, name, value):
    workdir, env = job
    trigger_env(env, airflow_stack, "5.0.5", **waiting(**{name: value}))
    before = airflow_stack.count_runs()
    result = run_script("trigger.sh", "train", env=env, cwd=workdir, timeout=60)
    assert result.returncode == 1
    assert name in result.output, result.output
    assert airflow_stack.count_runs() == before
    assert not (workdir / "pwned").exists()


def test_without_the_switch_the_job_stops_at_the_created_run_as_before(job, airflow_stack):
    workdir, env = job
    trigger_env(env, airflow_stack, "5.0.6", MLOPS_TRIGGER_RESULT_TIMEOUT_SECONDS="not checked")
    result = run_script("trigger.sh", "train", "train.env", env=env, cwd=workdir, timeout=60)
    assert result.returncode == 0, result.output
    assert "created: mlops__demo__breast-cancer__train run trigger__5.0.6__" in result.output
    assert "waiting for the run's result" not in result.output


# --- run_status.py on its own ---------------------------------------------------------------


@pytest.fixture
def status_job(job, airflow_stack, tmp_path):
    """A job with the Lambda's environment, and run_status.py behind a bash shim for run_script."""
    workdir, env = job
    trigger_env(env, airflow_stack, "5.1.0")
    shim = tmp_path / "run_status.sh"
    shim.write_text(f'exec "{env["MLOPS_PYTHON"]}" "{SCRIPTS / "run_status.py"}" "$@"\n')
    return workdir, env, shim


def write_dotenv(workdir, run_id, dag_id=f"mlops__{PROJECT}__{MODEL}__train"):
    path = workdir / "train.env"
    path.write_text(f"MLOPS_DAG_ID={dag_id}\nMLOPS_DAG_RUN_ID={run_id}\n")
    return path.name


def wait_args(dotenv, timeout="3"):
    return [
        "wait",
        "--dotenv",
        dotenv,
        "--kind",
        "train",
        "--until",
        "finished",
        "--timeout",
        timeout,
        "--interval",
        "1",
    ]


def test_transient_errors_are_asked_again_until_the_timeout(status_job):
    workdir, env, shim = status_job
    env.update(MLOPS_AIRFLOW_API_URL="http://127.0.0.1:9")  # Airflow down: the Lambda answers 504
    dotenv = write_dotenv(workdir, "trigger__5.1.0__0123456789abcdef0123")
    result = run_script(str(shim), *wait_args(dotenv), env=env, cwd=workdir)
    assert result.returncode == 1, result.output
    assert result.output.count("status query failed (504 airflow_unreachable)") >= 2
    assert "timed out after" in result.output and "no answer" in result.output


def test_an_unknown_run_fails_at_once(status_job):
    workdir, env, shim = status_job
    dotenv = write_dotenv(workdir, "trigger__5.1.0__ffffffffffffffffffff")
    result = run_script(str(shim), *wait_args(dotenv, timeout="60"), env=env, cwd=workdir)
    assert result.returncode == 1
    assert "404 run_not_found" in result.output and "asking again" not in result.output


def test_a_dotenv_of_another_dag_is_refused(status_job):
    workdir, env, shim = status_job
    dotenv = write_dotenv(workdir, "trigger__5.1.0__ffffffffffffffffffff", dag_id="mlops__demo__other__train")
    result = run_script(str(shim), *wait_args(dotenv), env=env, cwd=workdir)
    assert result.returncode == 1
    assert "names the DAG mlops__demo__other__train, not mlops__demo__breast-cancer__train" in result.output
