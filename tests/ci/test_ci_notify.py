"""
The notify-failure job: record_failure.sh leaves a note in each failed job, notify_failure.sh
reports each note with ``mlops notify ci-failure`` to the model's Slack and SNS.

Real: bash, the mlops CLI of this checkout with Airflow's connection lookup from the environment
(``AIRFLOW_CONN_*``, as the masked CI/CD variable gives it), the Slack provider's notifier posting
to a loopback HTTP server, and SNS on moto with an SQS queue subscribed.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from ci_testenv import EXAMPLE, run_script
from notify_fakes import WEBHOOK_TOKEN, MotoSns, SlackServer

PIPELINE_URL = "https://gitlab.example.com/platform/mlops/-/pipelines/9001"
PROJECT_URL = "https://gitlab.example.com/platform/mlops"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def failed_pipeline(job, slack_server: SlackServer, moto_sns: MotoSns, tmp_path):
    """The notify-failure job's checkout: the prepare job's model/ and version, Slack and SNS wired."""
    workdir, env = job
    shutil.copytree(EXAMPLE, workdir / "model", ignore=shutil.ignore_patterns("__pycache__"))
    config = workdir / "model" / "mlops.yaml"
    config.write_text(
        config.read_text()
        + f"\nnotifications:\n  slack: {{connection_id: slack_default}}\n"
        f"  sns: {{topic_arn: '{moto_sns.topic_arn}', aws_conn_id: aws_moto}}\n"
    )
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW_CONN_SLACK_DEFAULT=json.dumps(
            {"conn_type": "slackwebhook", "host": f"{slack_server.url}/services", "password": WEBHOOK_TOKEN}
        ),
        AIRFLOW_CONN_AWS_MOTO=os.environ["AIRFLOW_CONN_AWS_MOTO"],
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        CI_PIPELINE_URL=PIPELINE_URL,
        CI_PROJECT_URL=PROJECT_URL,
        MLOPS_PROJECT="demo",
        MLOPS_MODEL="breast-cancer",
        MLOPS_VERSION="1.0.7",
        MLOPS_UPSTREAM_COMMIT_SHA=COMMIT,
        MLOPS_UPSTREAM_PROJECT_PATH="ml/breast-cancer",
    )
    return workdir, env


def record_failure(workdir, env, status: str, **job: str):
    variables = {"CI_JOB_STATUS": status, "CI_JOB_ID": "4242", "CI_JOB_NAME": "package", "CI_JOB_STAGE": "package",
                 "CI_JOB_URL": f"{PROJECT_URL}/-/jobs/4242", **job}
    return run_script("record_failure.sh", env={**env, **variables}, cwd=workdir)


def test_record_failure_leaves_a_note_only_when_the_job_failed(job):
    workdir, env = job
    (workdir / ".mlops-failed").mkdir()
    (workdir / ".mlops-failed" / "planted.env").write_text("job=written by the model's code\n")
    assert record_failure(workdir, env, "success").returncode == 0
    assert not (workdir / ".mlops-failed").exists()
    assert record_failure(workdir, env, "failed").returncode == 0
    assert (workdir / ".mlops-failed" / "4242.env").read_text() == (
        f"job=package\nstage=package\nurl={PROJECT_URL}/-/jobs/4242\n"
    )


def test_each_failed_job_reaches_slack_and_sns_with_pipeline_job_and_model(failed_pipeline, slack_server, moto_sns):
    workdir, env = failed_pipeline
    assert record_failure(workdir, env, "failed").returncode == 0
    # A note whose link leads elsewhere: reported, without the link.
    (workdir / ".mlops-failed" / "4243.env").write_text("job=test\nstage=test\nurl=https://evil.example/-/jobs/1\n")
    result = run_script("notify_failure.sh", env=env, cwd=workdir, timeout=180)
    assert result.returncode == 0, result.output
    assert "notified slack of the failed job package" in result.output
    assert "notified sns of the failed job package" in result.output
    first, second = (request.json() for request in slack_server.requests)
    assert first["text"].startswith("demo/breast-cancer: CI job package failed in stage package")
    text = json.dumps(first)
    for expected in (PIPELINE_URL, f"{PROJECT_URL}/-/jobs/4242", "demo/breast-cancer", "1.0.7", COMMIT[:12]):
        assert expected in text, expected
    assert "CI job test failed in stage test" in second["text"] and "evil.example" not in json.dumps(second)
    bodies = [json.loads(envelope["Message"]) if envelope["Message"].startswith("{") else envelope["Message"]
              for envelope in moto_sns.received()]
    assert any("package" in body and PIPELINE_URL in body for body in bodies), bodies


def test_a_failing_slack_is_logged_redacted_and_the_job_still_passes(failed_pipeline, slack_server):
    workdir, env = failed_pipeline
    slack_server.respond_with(default="500")
    assert record_failure(workdir, env, "failed").returncode == 0
    result = run_script("notify_failure.sh", env=env, cwd=workdir, timeout=180)
    assert result.returncode == 0, result.output
    assert "could not notify slack after" in result.output and "500" in result.output
    assert len(slack_server.requests) > 1  # retried within its budget
    for secret in (WEBHOOK_TOKEN, "xoxWebhookSecretToken42"):
        assert secret not in result.output


def test_without_the_models_config_there_is_nobody_to_notify(job):
    workdir, env = job
    result = run_script("notify_failure.sh", env={**env, "CI_PIPELINE_URL": PIPELINE_URL}, cwd=workdir)
    assert result.returncode == 0 and "no model to notify" in result.output


def test_an_invalid_config_fails_the_job_with_the_reason(failed_pipeline):
    workdir, env = failed_pipeline
    config = workdir / "model" / "mlops.yaml"
    config.write_text(config.read_text() + "\nunknown_key: 1\n")
    result = run_script("notify_failure.sh", env=env, cwd=workdir, timeout=120)
    assert result.returncode != 0
    assert "model/mlops.yaml" in result.output and "unknown_key" in result.output
