"""A failed GitLab CI job: the same ``failure`` message a failed DAG task sends, from ``mlops notify ci-failure``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from notify_fakes import WEBHOOK_TOKEN, SlackServer

from airflow_provider_mlops.cli import main
from airflow_provider_mlops.notifications import formats, messages

REPO = Path(__file__).resolve().parents[2]
PIPELINE = "https://gitlab.example.com/platform/mlops/-/pipelines/9001"
JOB = "https://gitlab.example.com/platform/mlops/-/jobs/4242"


def test_the_ci_failure_message_is_a_failure_event_like_a_failed_task() -> None:
    message = messages.ci_job_failure(
        "demo", "breast-cancer", pipeline_url=PIPELINE, job="package", stage="package", version="1.0.7",
        commit="0123456789abcdef0123456789abcdef01234567", source="ml/breast-cancer",
        links={"Job log": JOB, "GitLab pipeline": PIPELINE},
    )
    task = messages.task_failure("demo", "breast-cancer", dag_id="d", task_id="t", try_number=1, max_tries=0,
                                 error="boom", links={})
    assert (message.event, message.status) == (task.event, task.status) == ("failure", "failure")
    assert dict(message.fields) == {"Model": "demo/breast-cancer", "Pipeline": PIPELINE, "Job": "package",
                                    "Stage": "package", "Version": "1.0.7", "Commit": "0123456789ab",
                                    "Repository": "ml/breast-cancer"}
    assert message.links == (("Job log", JOB), ("GitLab pipeline", PIPELINE))
    assert formats.sns_attributes(message) == {"project": "demo", "model": "breast-cancer", "event": "failure",
                                               "status": "failure", "version": "1.0.7"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    model = tmp_path / "breast-cancer"
    shutil.copytree(REPO / "examples" / "breast-cancer", model, ignore=shutil.ignore_patterns("__pycache__"))
    path = model / "mlops.yaml"
    path.write_text(path.read_text() + "\nnotifications:\n  slack: {connection_id: slack_hook}\n")
    return path


def test_the_cli_sends_it_to_the_models_slack(config: Path, slack_server: SlackServer,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["notify", "ci-failure", "--config", str(config), "--pipeline-url", PIPELINE, "--job", "trigger-train",
            "--stage", "train", "--job-url", JOB, "--version", "1.0.7"]
    assert main(argv) == 0
    [request] = slack_server.requests
    body = request.json()
    assert body["text"].startswith("demo/breast-cancer: CI job trigger-train failed in stage train")
    buttons = {e["text"]["text"]: e["url"] for e in body["blocks"][-2]["elements"]}
    assert buttons == {"Job log": JOB, "GitLab pipeline": PIPELINE}
    captured = capsys.readouterr()
    assert "notified slack of the failed job trigger-train" in captured.out
    assert WEBHOOK_TOKEN not in captured.out + captured.err
