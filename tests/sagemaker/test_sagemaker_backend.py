"""
The SageMaker compute backend against moto (server mode, through the Airflow AWS connection).

moto completes training and processing jobs on creation; tests hold a job InProgress, or fail
or stop it, by editing moto's in-process job object (a retry then starts the next attempt,
``<job>-a2``). moto does not implement StopTrainingJob,
so that call is checked with botocore's Stubber (which validates the request against the real
SageMaker API model).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from botocore.stub import Stubber
from sagemaker_testenv import ACCOUNT, ARTIFACTS_BUCKET, DATA_BUCKET, ROLE, Aws

from airflow_provider_mlops.backends import get_compute_backend
from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobSpec
from airflow_provider_mlops.backends.sagemaker import SageMakerComputeBackend
from airflow_provider_mlops.exceptions import BackendError
from airflow_provider_mlops.triggers.job import JobCompletionTrigger

ARTIFACTS = f"s3://{ARTIFACTS_BUCKET}/demo/bc"
IMAGE = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/demo/breast-cancer:1.0.3"


def backend() -> SageMakerComputeBackend:
    return SageMakerComputeBackend(region_name="us-east-1", role_arn=ROLE, artifacts_uri=ARTIFACTS, poll_interval=0.05)


def training_spec(name: str = "demo-bc-train-0123456789", **overrides: Any) -> JobSpec:
    values: dict[str, Any] = {
        "name": name, "kind": "training", "entrypoint": "train.py", "image": IMAGE,
        "hyperparameters": {"C": 1.0, "max_iter": 500},
        "channels": {"train": f"s3://{DATA_BUCKET}/breast-cancer/train"},
        "metric_definitions": [{"name": "train_accuracy", "regex": "train_accuracy=([0-9.]+)"}],
        "resources": {"instance_type": "ml.m5.xlarge", "instance_count": 2, "volume_size_gb": 10,
                      "max_runtime_seconds": 3600, "use_spot": True, "max_wait_seconds": 7200, "checkpoint_uri": None},
        "environment": {"LOG_LEVEL": "info"},
    }
    values.update(overrides)
    return JobSpec(**values)


def processing_spec(name: str = "demo-bc-evaluate-0123456789") -> JobSpec:
    return JobSpec(name=name, kind="processing", entrypoint="evaluate.py", image=IMAGE,
                   channels={"test": f"s3://{DATA_BUCKET}/breast-cancer/test", "model": f"{ARTIFACTS}/training/x/output/model.tar.gz"},
                   resources={"instance_type": "ml.t3.medium", "max_runtime_seconds": 1800})


def test_training_job_request_comes_from_the_config(aws: Aws) -> None:
    state = backend().submit(training_spec())
    described = aws.client("sagemaker").describe_training_job(TrainingJobName="demo-bc-train-0123456789")
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert described["AlgorithmSpecification"]["ContainerEntrypoint"] == ["python", "train.py"]
    assert described["AlgorithmSpecification"]["ContainerArguments"] == ["--C", "1.0", "--max_iter", "500"]
    env = backend().training_request(training_spec())["Environment"]  # moto does not return Environment
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train" and env["SM_MODEL_DIR"] == "/opt/ml/model"
    assert env["SM_HP_C"] == "1.0" and env["LOG_LEVEL"] == "info"
    assert described["RoleArn"] == ROLE
    assert described["HyperParameters"] == {"C": "1.0", "max_iter": "500"}
    assert described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{DATA_BUCKET}/breast-cancer/train"
    assert described["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 10}
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert described["EnableManagedSpotTraining"] is True
    assert described["CheckpointConfig"]["S3Uri"] == f"{ARTIFACTS}/checkpoints/demo-bc-train-0123456789"
    assert described["OutputDataConfig"]["S3OutputPath"] == f"{ARTIFACTS}/training"
    assert state.status == COMPLETED
    assert state.model_uri == f"{ARTIFACTS}/training/demo-bc-train-0123456789/output/model.tar.gz"
    assert "#/jobs/demo-bc-train-0123456789" in state.details["links"]["console"]
    assert state.log_uri and "TrainingJobs" in state.log_uri and "demo-bc-train-0123456789" in state.log_uri


def test_submitting_twice_reattaches_and_never_creates_a_second_job(aws: Aws) -> None:
    first = backend().submit(training_spec())
    second = backend().submit(training_spec())  # a fresh backend, as a retried task builds one
    assert first.status == second.status == COMPLETED
    assert list(aws.sagemaker_state.training_jobs) == ["demo-bc-train-0123456789"]


@pytest.mark.parametrize("ended", ["Failed", "Stopped"])
def test_a_retry_after_a_failed_or_stopped_job_starts_the_next_attempt(aws: Aws, ended: str) -> None:
    backend().submit(training_spec())
    aws.sagemaker_state.training_jobs["demo-bc-train-0123456789"].training_job_status = ended
    second = backend().submit(training_spec())  # the task's retry
    assert second.name == "demo-bc-train-0123456789-a2" and second.status == COMPLETED
    again = backend().submit(training_spec())  # a later retry re-attaches to the completed attempt
    assert again.name == second.name
    aws.sagemaker_state.training_jobs[second.name].training_job_status = ended
    assert backend().submit(training_spec()).name == "demo-bc-train-0123456789-a3"
    assert sorted(aws.sagemaker_state.training_jobs) == [
        "demo-bc-train-0123456789", "demo-bc-train-0123456789-a2", "demo-bc-train-0123456789-a3"]


def test_a_retry_re_attaches_to_a_running_attempt_and_never_starts_a_second(aws: Aws) -> None:
    backend().submit(training_spec())
    aws.sagemaker_state.training_jobs["demo-bc-train-0123456789"].training_job_status = "Failed"
    backend().submit(training_spec())
    aws.sagemaker_state.training_jobs["demo-bc-train-0123456789-a2"].training_job_status = "InProgress"
    state = backend().submit(training_spec())
    assert (state.name, state.status) == ("demo-bc-train-0123456789-a2", IN_PROGRESS)
    assert len(aws.sagemaker_state.training_jobs) == 2


def test_a_processing_retry_after_a_failure_starts_the_next_attempt(aws: Aws, container_writes_evaluation: dict[str, Any]) -> None:
    backend().submit(processing_spec())
    aws.sagemaker_state.processing_jobs["demo-bc-evaluate-0123456789"].processing_job_status = "Failed"
    assert backend().submit(processing_spec()).name == "demo-bc-evaluate-0123456789-a2"
    assert sorted(aws.sagemaker_state.processing_jobs) == ["demo-bc-evaluate-0123456789", "demo-bc-evaluate-0123456789-a2"]


def test_a_failed_job_carries_its_failure_reason(aws: Aws) -> None:
    sm = backend()
    sm.submit(training_spec())
    job = aws.sagemaker_state.training_jobs["demo-bc-train-0123456789"]
    job.training_job_status = "Failed"
    job.failure_reason = "AlgorithmError: ValueError: Input contains NaN"
    state = sm.poll("demo-bc-train-0123456789")
    assert state.status == FAILED
    assert state.failure_reason == "AlgorithmError: ValueError: Input contains NaN"


def test_a_stopped_job_is_stopped_not_completed(aws: Aws) -> None:
    sm = backend()
    sm.submit(training_spec())
    aws.sagemaker_state.training_jobs["demo-bc-train-0123456789"].training_job_status = "Stopped"
    state = backend().poll("demo-bc-train-0123456789")
    assert state.status == STOPPED and state.failure_reason


def test_in_progress_then_completed(aws: Aws) -> None:
    sm = backend()
    sm.submit(training_spec())
    job = aws.sagemaker_state.training_jobs["demo-bc-train-0123456789"]
    job.training_job_status, job.secondary_status = "InProgress", "Downloading"
    state = sm.poll("demo-bc-train-0123456789")
    assert (state.status, state.details["secondary_status"]) == (IN_PROGRESS, "Downloading")
    job.training_job_status = "Stopping"  # still moving: not terminal
    assert not sm.poll("demo-bc-train-0123456789").terminal
    job.training_job_status, job.secondary_status = "Completed", "Completed"
    assert sm.poll("demo-bc-train-0123456789").status == COMPLETED


def test_evaluation_metrics_are_read_from_evaluation_json(aws: Aws, container_writes_evaluation: dict[str, Any]) -> None:
    state = backend().submit(processing_spec())
    described = aws.client("sagemaker").describe_processing_job(ProcessingJobName="demo-bc-evaluate-0123456789")
    env = backend().processing_request(processing_spec())["Environment"]  # moto does not keep Environment
    assert env["SM_CHANNEL_TEST"] == "/opt/ml/processing/input/test"
    assert env["SM_OUTPUT_DATA_DIR"] == "/opt/ml/processing/output"
    assert described["AppSpecification"]["ContainerEntrypoint"][-1].endswith("exec python evaluate.py")
    assert state.status == COMPLETED
    assert state.metrics == container_writes_evaluation["metrics"]
    assert state.details["evaluation"]["confusion_matrix"]["matrix"] == [[40, 3], [1, 70]]
    assert state.output_uri == f"{ARTIFACTS}/evaluation/demo-bc-evaluate-0123456789/evaluation.json"


def test_a_processing_job_without_evaluation_json_fails_loudly(aws: Aws) -> None:
    state = backend().submit(processing_spec())
    assert state.status == FAILED
    assert "wrote no evaluation.json at s3://" in str(state.failure_reason)


def test_local_channels_are_refused_with_the_fix(aws: Aws) -> None:
    with pytest.raises(BackendError, match="set it to an s3:// URI"):
        backend().submit(training_spec(channels={"train": "/tmp/data/train"}))
    assert not aws.sagemaker_state.training_jobs


def test_stop_processing_job_against_moto(aws: Aws, container_writes_evaluation: dict[str, Any]) -> None:
    sm = backend()
    sm.submit(processing_spec())
    aws.sagemaker_state.processing_jobs["demo-bc-evaluate-0123456789"].processing_job_status = "InProgress"
    sm.stop("demo-bc-evaluate-0123456789")
    assert sm.poll("demo-bc-evaluate-0123456789").status == STOPPED


def test_stop_training_job_with_stubber(moto_server: str) -> None:
    """moto lacks StopTrainingJob: Stubber checks our request against the real API model."""
    sm = backend()
    stubber = Stubber(sm.hook.conn)
    name = "demo-bc-train-0123456789"
    stubber.add_response("describe_training_job", _described_training(name, "InProgress"), {"TrainingJobName": name})
    stubber.add_response("stop_training_job", {}, {"TrainingJobName": name})
    # A second stop of a job that already finished does nothing.
    stubber.add_response("describe_training_job", _described_training(name, "Completed"), {"TrainingJobName": name})
    with stubber:
        sm.stop(name)
        sm.stop(name)
        stubber.assert_no_pending_responses()


def _described_training(name: str, status: str) -> dict[str, Any]:
    now = time.time()
    return {
        "TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:training-job/{name}",
        "TrainingJobStatus": status, "SecondaryStatus": "Training", "ModelArtifacts": {"S3ModelArtifacts": ""},
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": IMAGE},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600}, "CreationTime": now,
    }


def test_trigger_serializes_to_primitives_and_round_trips(moto_server: str) -> None:
    trigger = JobCompletionTrigger(backend="sagemaker", backend_kwargs=backend().serialize(), job_name="j", poll_interval=0.05)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_mlops.triggers.job.JobCompletionTrigger"
    import json

    assert json.loads(json.dumps(kwargs)) == kwargs
    rebuilt = JobCompletionTrigger(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert get_compute_backend("sagemaker", **kwargs["backend_kwargs"]).serialize() == kwargs["backend_kwargs"]


def test_a_rebuilt_backend_remembers_job_kinds(aws: Aws, container_writes_evaluation: dict[str, Any]) -> None:
    sm = backend()
    sm.submit(processing_spec())
    kwargs = sm.serialize()
    assert kwargs["job_kinds"] == {"demo-bc-evaluate-0123456789": "processing"}
    rebuilt = SageMakerComputeBackend(**kwargs)
    assert rebuilt.poll("demo-bc-evaluate-0123456789").status == COMPLETED
    # A rebuilt backend that was not told still finds the job, trying training first.
    assert SageMakerComputeBackend(**{**kwargs, "job_kinds": None}).poll("demo-bc-evaluate-0123456789").status == COMPLETED


@pytest.mark.parametrize(("final", "event_status"), [("Completed", "success"), ("Failed", "failed"), ("Stopped", "stopped")])
def test_trigger_waits_for_a_running_job_and_reports_its_end(aws: Aws, final: str, event_status: str) -> None:
    sm = backend()
    sm.submit(training_spec())
    job = aws.sagemaker_state.training_jobs["demo-bc-train-0123456789"]
    job.training_job_status = "InProgress"

    def finish() -> None:
        time.sleep(0.3)
        job.failure_reason = "injected" if final != "Completed" else None
        job.training_job_status = final

    threading.Thread(target=finish, daemon=True).start()
    trigger = JobCompletionTrigger(backend="sagemaker", backend_kwargs=sm.serialize(), job_name="demo-bc-train-0123456789",
                                   poll_interval=0.05)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(asyncio.wait_for(first_event(), timeout=30))
    assert payload["status"] == event_status
    assert payload["state"]["status"] == final


def test_a_retry_with_different_settings_is_refused_not_attached(aws: Aws) -> None:
    backend().submit(training_spec())
    with pytest.raises(BackendError, match="already exists with different settings .*hyperparameters.*trigger a new DAG run"):
        backend().submit(training_spec(hyperparameters={"C": 0.5, "max_iter": 500}))
    with pytest.raises(BackendError, match="image: the job has"):
        backend().submit(training_spec(image=IMAGE.replace("1.0.3", "1.0.4")))
    assert len(aws.sagemaker_state.training_jobs) == 1
