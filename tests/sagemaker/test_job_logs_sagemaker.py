"""
SageMaker job output in the trigger's log: CloudWatch Logs events of a job held InProgress (put
into moto's CloudWatch Logs, read through the amazon provider's AwsLogsHook) appear as trigger
log lines as they arrive, once each, and the trigger still reports the job's end.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sagemaker_testenv import Aws
from test_sagemaker_backend import backend, training_spec

from airflow_provider_mlops.triggers.job import JobCompletionTrigger

JOB = "demo-bc-train-0123456789"
GROUP = "/aws/sagemaker/TrainingJobs"


def _put(aws: Aws, stream: str, *messages: str) -> None:
    now = int(time.time() * 1000)
    aws.client("logs").put_log_events(logGroupName=GROUP, logStreamName=stream,
                                      logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)])


def test_cloudwatch_events_of_a_running_job_reach_the_trigger_log_then_it_completes(aws: Aws, trigger_log: Any) -> None:
    sm = backend()
    sm.submit(training_spec())
    job = aws.sagemaker_state.training_jobs[JOB]
    job.training_job_status = "InProgress"
    logs = aws.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    stream = f"{JOB}/algo-1-1700000000"
    logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    _put(aws, stream, "epoch 1 loss=0.9")

    trigger = JobCompletionTrigger(backend="sagemaker", backend_kwargs=sm.serialize(), job_name=JOB, poll_interval=0.05)
    trigger._log = trigger_log.logger

    async def drive() -> dict[str, Any]:
        run = asyncio.ensure_future(trigger_log.first_event(trigger))
        await trigger_log.until("epoch 1 loss=0.9")
        assert job.training_job_status == "InProgress"
        _put(aws, stream, "epoch 2 loss=0.5\nepoch 2 accuracy=0.93")  # a multi-line event: two log lines
        await trigger_log.until("epoch 2 accuracy=0.93")
        job.training_job_status = "Completed"
        return await run

    event = asyncio.run(asyncio.wait_for(drive(), timeout=60))
    assert event["status"] == "success"
    job_lines = [m for m in trigger_log.messages if m.startswith(f"[{JOB}]")]
    assert job_lines == [f"[{JOB}] epoch 1 loss=0.9", f"[{JOB}] epoch 2 loss=0.5", f"[{JOB}] epoch 2 accuracy=0.93"]
    assert trigger.serialize()[1]["log_cursor"], "the trigger's kwargs do not carry where its log reading stopped"

    # A failed job's last lines, as the operator puts them into the failure message.
    _put(aws, stream, *[f"step {i}" for i in range(30)])
    tail = sm.logs_since(JOB, None, 5, 4096)
    assert tail.lines == ["step 25", "step 26", "step 27", "step 28", "step 29"]


def test_a_job_that_has_not_logged_yet_gives_no_lines(aws: Aws) -> None:
    sm = backend()
    sm.submit(training_spec())
    batch = sm.logs_since(JOB, None)
    assert batch.lines == [] and batch.cursor is None
