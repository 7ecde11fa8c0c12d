"""
The SageMaker compute backend: training jobs for ``train``, processing jobs for ``evaluate``.

Every AWS call goes through :class:`~airflow_provider_mlops.hooks.sagemaker.MlopsSageMakerHook`
(an Airflow AWS connection). ``submit`` describes the job first and creates it only when no job
of that name exists, so a retried task re-attaches to the job an earlier try started while it
runs or once it completed; after a Failed or Stopped job it starts the next attempt (``-a2``).
A processing job's metrics are read back from the ``evaluation.json`` it wrote to S3.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from typing import Any

from airflow_provider_mlops.backends.base import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    LOG_BYTES_PER_POLL,
    LOG_LINES_PER_POLL,
    STOPPED,
    JobKind,
    JobSpec,
    JobState,
    LogBatch,
    newest_lines,
)
from airflow_provider_mlops.exceptions import BackendError
from airflow_provider_mlops.hooks.aws_access import SageMakerAccess
from airflow_provider_mlops.links.sagemaker import LOG_GROUPS, cloudwatch_logs_url, sagemaker_console_url
from airflow_provider_mlops.naming import MAX_ATTEMPTS, attempt_name

PROCESSING_INPUT_ROOT = "/opt/ml/processing/input"
PROCESSING_OUTPUT_DIR = "/opt/ml/processing/output"
CODE_DIR = "/opt/ml/code"
EVALUATION_FILE = "evaluation.json"
_STATUS = {"InProgress": IN_PROGRESS, "Stopping": IN_PROGRESS, "Completed": COMPLETED, "Failed": FAILED, "Stopped": STOPPED}


def channel_env(name: str) -> str:
    return f"SM_CHANNEL_{name.upper().replace('-', '_')}"


def command_for(entrypoint: str) -> list[str]:
    """``train.py --x`` runs with the image's ``python``; anything else is a command line."""
    parts = shlex.split(entrypoint)
    return ["python", *parts] if parts and parts[0].endswith(".py") else parts


def training_environment(spec: JobSpec) -> dict[str, str]:
    """
    The training-toolkit environment, set explicitly: SageMaker itself only lays out the files
    (``/opt/ml/input/data/<channel>``, ``/opt/ml/model``), so a plain image gets the same
    ``SM_*`` variables as on the local and Kubernetes backends.
    """
    env = {
        "SM_MODEL_DIR": "/opt/ml/model",
        "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
        "SM_INPUT_DIR": "/opt/ml/input",
        "SM_INPUT_CONFIG_DIR": "/opt/ml/input/config",
        "SM_CHANNELS": json.dumps(sorted(spec.channels)),
        "MLOPS_JOB_NAME": spec.name,
        "MLOPS_JOB_KIND": spec.kind,
    }
    env.update({channel_env(c): f"/opt/ml/input/data/{c}" for c in spec.channels})
    hps = json.dumps(spec.hyperparameters)
    if len(hps) <= 512:  # the API's limit on one value; hyperparameters.json always has them all
        env["SM_HPS"] = hps
    env.update({f"SM_HP_{k.upper()}": str(v)[:512] for k, v in spec.hyperparameters.items()})
    env.update(spec.environment)
    return env


class SageMakerComputeBackend(SageMakerAccess):
    """
    Run jobs on Amazon SageMaker.

    :param aws_conn_id: the Airflow AWS connection (``aws.conn_id`` in mlops.yaml).
    :param region_name: overrides the connection's region (``aws.region``).
    :param role_arn: the execution role jobs run as (``aws.role_arn``).
    :param artifacts_uri: the S3 prefix for models, evaluation output and checkpoints
        (``aws.artifacts_uri``).
    :param poll_interval: seconds between status checks (``aws.poll_interval_seconds``).
    :param job_kinds: job name → ``training`` or ``processing``, for jobs this backend already
        knows (so a trigger rebuilt from :meth:`serialize` describes each job once per poll).
    """

    name = "sagemaker"

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        role_arn: str | None = None,
        artifacts_uri: str | None = None,
        poll_interval: float = 30.0,
        job_kinds: dict[str, str] | None = None,
    ) -> None:
        super().__init__(aws_conn_id, region_name, role_arn, artifacts_uri)
        self.default_poll_interval = poll_interval
        self._kinds: dict[str, JobKind] = {
            name: "processing" if kind == "processing" else "training" for name, kind in (job_kinds or {}).items()
        }

    def serialize(self) -> dict[str, Any]:
        return {
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "role_arn": self.role_arn,
            "artifacts_uri": self.artifacts_uri,
            "poll_interval": self.default_poll_interval,
            "job_kinds": dict(self._kinds),
        }

    # -- the protocol --------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> JobState:
        """
        Create the task's job, or re-attach to its InProgress or Completed attempt; return its state.

        Attempts are named ``<job>``, ``<job>-a2``, ... (:func:`~airflow_provider_mlops.naming.attempt_name`):
        after a Failed or Stopped attempt, a retry creates the next one, so a retry runs the job
        again instead of re-reading the same failure, and there is never more than one live job.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            attempt_spec = replace(spec, name=attempt_name(spec.name, attempt))
            self._kinds[attempt_spec.name] = spec.kind
            existing = self.hook.describe_job(spec.kind, attempt_spec.name)
            if existing is None:
                request = (self.training_request(attempt_spec) if spec.kind == "training"
                           else self.processing_request(attempt_spec))
                created = self.hook.create_job(spec.kind, request)
                self.hook.log.info("%s %s job %s", "Created" if created else "Re-attached to the concurrently created",
                                   spec.kind, attempt_spec.name)
                return self.poll(attempt_spec.name)
            status = existing.get(self._status_key(spec.kind))
            if status in ("Failed", "Stopped"):
                self.hook.log.info("%s job %s is %s (%s): starting the next attempt", spec.kind, attempt_spec.name,
                                   status, existing.get("FailureReason") or existing.get("ExitMessage") or "no reason given")
                continue
            self._check_same_job(attempt_spec, existing)
            self.hook.log.info("%s job %s already exists (%s): re-attaching, not creating another",
                               spec.kind, attempt_spec.name, status)
            return self.poll(attempt_spec.name)
        raise BackendError(
            f"SageMaker {spec.kind} job {spec.name} failed {MAX_ATTEMPTS} attempts ({spec.name}, "
            f"{attempt_name(spec.name, 2)}, ...); read their FailureReason in the SageMaker console, fix the cause, "
            "then trigger a new DAG run"
        )

    def poll(self, name: str) -> JobState:
        kind, described = self._describe(name)
        if described is None:
            raise BackendError(f"no SageMaker training or processing job named {name} in {self.region}")
        raw = str(described[self._status_key(kind)])
        status = _STATUS.get(raw)
        if status is None:
            raise BackendError(f"SageMaker {kind} job {name} is in status {raw!r}, which this backend does not know")
        links = self.links(kind, name)
        details: dict[str, Any] = {
            "kind": kind,
            "sagemaker_status": raw,
            "secondary_status": described.get("SecondaryStatus"),
            "arn": described.get("TrainingJobArn") or described.get("ProcessingJobArn"),
            "links": links,
        }
        state = JobState(name=name, status=status, failure_reason=described.get("FailureReason") or described.get("ExitMessage"),
                         log_uri=links["logs"], details=details)
        if status != COMPLETED:
            if status == STOPPED and not state.failure_reason:
                state = JobState(**{**state.to_dict(), "failure_reason": "the job was stopped before it completed"})
            return state
        if kind == "training":
            return self._completed_training(state, described)
        return self._completed_processing(state, described)

    def stop(self, name: str) -> None:
        """Stop the job; a finished or unknown job is left alone."""
        kind, described = self._describe(name)
        if described is None or described[self._status_key(kind)] not in ("InProgress",):
            return
        self.hook.log.info("Stopping SageMaker %s job %s", kind, name)
        self.hook.stop_job(kind, name)

    def logs_since(
        self, name: str, cursor: str | None, max_lines: int = LOG_LINES_PER_POLL, max_bytes: int = LOG_BYTES_PER_POLL
    ) -> LogBatch:
        """
        The job's CloudWatch log events after ``cursor`` (a JSON of each stream's next-forward
        token), through the amazon provider's ``AwsLogsHook``. A stream read for the first time
        gives its newest ``max_lines`` events only.
        """
        kind, described = self._describe(name)
        if described is None:
            raise BackendError(f"no SageMaker training or processing job named {name} in {self.region}")
        tokens: dict[str, str | None] = json.loads(cursor) if cursor else {}
        lines: list[str] = []
        for stream in self.hook.job_log_streams(LOG_GROUPS[kind], name):
            messages, tokens[stream] = self.hook.log_messages_since(LOG_GROUPS[kind], stream, tokens.get(stream), max_lines)
            lines += [line for message in messages for line in message.splitlines()]
        kept, skipped = newest_lines(lines, max_lines, max_bytes)
        return LogBatch(kept, json.dumps(tokens, sort_keys=True) if tokens else None, skipped)

    @staticmethod
    def _check_same_job(spec: JobSpec, existing: dict[str, Any]) -> None:
        """Re-attach only to the job this task would have created, never to a different one."""
        differs: dict[str, tuple[Any, Any]]
        if spec.kind == "training":
            image = existing.get("AlgorithmSpecification", {}).get("TrainingImage")
            hyperparameters = existing.get("HyperParameters") or {}
            differs = {"image": (image, spec.image)} if image != spec.image else {}
            wanted = {k: str(v) for k, v in spec.hyperparameters.items()}
            if {k: v for k, v in hyperparameters.items() if k in wanted} != wanted:
                differs["hyperparameters"] = (hyperparameters, wanted)
        else:
            image = existing.get("AppSpecification", {}).get("ImageUri")
            differs = {"image": (image, spec.image)} if image != spec.image else {}
        if differs:
            detail = "; ".join(f"{key}: the job has {had!r}, this task wants {want!r}" for key, (had, want) in differs.items())
            raise BackendError(
                f"SageMaker {spec.kind} job {spec.name} already exists with different settings ({detail}). Job "
                "names are per DAG run and task, so a retry re-attaches to its job: trigger a new DAG run to "
                "train with the new settings"
            )

    # -- requests ------------------------------------------------------------------------

    def _require(self, spec: JobSpec) -> tuple[str, str, str]:
        missing = [key for key, value in (("image", spec.image), ("aws.role_arn", self.role_arn),
                                          ("aws.artifacts_uri", self.artifacts_uri)) if not value]
        if missing:
            raise BackendError(f"SageMaker {spec.kind} job {spec.name} needs {', '.join(missing)} in mlops.yaml")
        for channel, location in spec.channels.items():
            if not location.startswith("s3://"):
                raise BackendError(
                    f"SageMaker {spec.kind} job {spec.name}: channel {channel!r} is {location!r}; SageMaker reads "
                    "channels from S3: set it to an s3:// URI in mlops.yaml"
                )
        return str(spec.image), str(self.role_arn), str(self.artifacts_uri)

    def training_request(self, spec: JobSpec) -> dict[str, Any]:
        """The CreateTrainingJob request for ``spec``, built from the config's typed keys."""
        image, role, artifacts = self._require(spec)
        resources = spec.resources
        max_runtime = int(resources.get("max_runtime_seconds", 86400))
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": max_runtime}
        request: dict[str, Any] = {
            "TrainingJobName": spec.name,
            "AlgorithmSpecification": {
                "TrainingImage": image,
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": d["name"], "Regex": d["regex"]} for d in spec.metric_definitions],
                # The config's entrypoint, with the hyperparameters as --key value arguments, as
                # the training toolkit passes them; the image's own ENTRYPOINT is not relied on.
                "ContainerEntrypoint": command_for(spec.entrypoint),
            },
            "RoleArn": role,
            "HyperParameters": {k: str(v) for k, v in spec.hyperparameters.items()},
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                                    "S3DataDistributionType": "FullyReplicated"}},
                    "InputMode": "File",
                }
                for channel, uri in spec.channels.items()
            ],
            "OutputDataConfig": {"S3OutputPath": spec.output_uri or f"{artifacts}/training"},
            "ResourceConfig": {
                "InstanceType": resources.get("instance_type", "ml.m5.large"),
                "InstanceCount": int(resources.get("instance_count", 1)),
                "VolumeSizeInGB": int(resources.get("volume_size_gb", 30)),
            },
            "StoppingCondition": stopping,
            "Environment": training_environment(spec),
            "Tags": [{"Key": "mlops:job-kind", "Value": spec.kind}],
        }
        arguments = [a for k, v in spec.hyperparameters.items() for a in (f"--{k}", str(v))]
        if arguments:
            request["AlgorithmSpecification"]["ContainerArguments"] = arguments
        if resources.get("use_spot"):
            stopping["MaxWaitTimeInSeconds"] = int(resources.get("max_wait_seconds") or max_runtime)
            request["EnableManagedSpotTraining"] = True
            request["CheckpointConfig"] = {
                "S3Uri": resources.get("checkpoint_uri") or f"{artifacts}/checkpoints/{spec.name}",
                "LocalPath": "/opt/ml/checkpoints",
            }
        return request

    def processing_request(self, spec: JobSpec) -> dict[str, Any]:
        """
        The CreateProcessingJob request that runs the evaluation entrypoint.

        Each channel is downloaded to ``/opt/ml/processing/input/<channel>`` and named in
        ``SM_CHANNEL_<NAME>``, and ``SM_OUTPUT_DATA_DIR`` is the folder uploaded to S3, so the
        entrypoint sees the same contract as on every backend. The ``model`` channel holds the
        training job's ``model.tar.gz``; it is unpacked before the entrypoint starts.
        """
        image, role, artifacts = self._require(spec)
        resources = spec.resources
        output = spec.output_uri or f"{artifacts}/evaluation/{spec.name}"
        env = {channel_env(c): f"{PROCESSING_INPUT_ROOT}/{c}" for c in spec.channels}
        env.update({"SM_OUTPUT_DATA_DIR": PROCESSING_OUTPUT_DIR, "MLOPS_JOB_NAME": spec.name, **spec.environment})
        command = shlex.join(command_for(spec.entrypoint))
        unpack = f"if [ -f {PROCESSING_INPUT_ROOT}/model/model.tar.gz ]; then tar -xzf {PROCESSING_INPUT_ROOT}/model/model.tar.gz -C {PROCESSING_INPUT_ROOT}/model; fi"
        return {
            "ProcessingJobName": spec.name,
            "RoleArn": role,
            "AppSpecification": {
                "ImageUri": image,
                "ContainerEntrypoint": ["sh", "-c", f"set -e; {unpack}; cd {CODE_DIR}; exec {command}"],
            },
            "ProcessingInputs": [
                {
                    "InputName": channel,
                    "S3Input": {"S3Uri": uri, "LocalPath": f"{PROCESSING_INPUT_ROOT}/{channel}", "S3DataType": "S3Prefix",
                                "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"},
                }
                for channel, uri in spec.channels.items()
            ],
            "ProcessingOutputConfig": {
                "Outputs": [{"OutputName": "evaluation",
                             "S3Output": {"S3Uri": output, "LocalPath": PROCESSING_OUTPUT_DIR, "S3UploadMode": "EndOfJob"}}]
            },
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": int(resources.get("instance_count", 1)),
                    "InstanceType": resources.get("instance_type", "ml.m5.large"),
                    "VolumeSizeInGB": int(resources.get("volume_size_gb", 30)),
                }
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": int(resources.get("max_runtime_seconds", 86400))},
            "Environment": env,
            "Tags": [{"Key": "mlops:job-kind", "Value": spec.kind}],
        }

    # -- reading state -------------------------------------------------------------------

    @staticmethod
    def _status_key(kind: str) -> str:
        return "TrainingJobStatus" if kind == "training" else "ProcessingJobStatus"

    def _describe(self, name: str) -> tuple[JobKind, dict[str, Any] | None]:
        known = self._kinds.get(name)
        order: list[JobKind] = [known] if known else ["training", "processing"]
        for kind in order:
            described = self.hook.describe_job(kind, name)
            if described is not None:
                self._kinds[name] = kind
                return kind, described
        return order[-1], None

    def links(self, kind: str, name: str) -> dict[str, str]:
        resource = "jobs" if kind == "training" else "processing-jobs"
        return {
            "console": sagemaker_console_url(self.region, resource, name),
            "logs": cloudwatch_logs_url(self.region, LOG_GROUPS[kind], name),
        }

    @staticmethod
    def _completed_training(state: JobState, described: dict[str, Any]) -> JobState:
        metrics = {m["MetricName"]: float(m["Value"]) for m in described.get("FinalMetricDataList", []) if "Value" in m}
        transitions = [
            {"status": t.get("Status"), "message": t.get("StatusMessage")}
            for t in described.get("SecondaryStatusTransitions", [])
        ]
        details = {**state.details, "status_transitions": transitions,
                   "billable_seconds": described.get("BillableTimeInSeconds")}
        return JobState(**{**state.to_dict(), "metrics": metrics, "details": details,
                           "model_uri": described.get("ModelArtifacts", {}).get("S3ModelArtifacts")})

    def _completed_processing(self, state: JobState, described: dict[str, Any]) -> JobState:
        outputs = described.get("ProcessingOutputConfig", {}).get("Outputs", [])
        output = next((o["S3Output"]["S3Uri"] for o in outputs if o.get("OutputName") == "evaluation"), None)
        if output is None:
            return JobState(**{**state.to_dict(), "status": FAILED,
                               "failure_reason": "the processing job has no 'evaluation' output"})
        report_uri = f"{output.rstrip('/')}/{EVALUATION_FILE}"
        report = self.hook.read_json(report_uri)
        if not isinstance(report, dict):
            return JobState(**{**state.to_dict(), "status": FAILED, "output_uri": report_uri,
                               "failure_reason": f"the job completed but wrote no {EVALUATION_FILE} at {report_uri}"})
        metrics = {k: float(v) for k, v in report.get("metrics", {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return JobState(**{**state.to_dict(), "metrics": metrics, "output_uri": report_uri,
                           "details": {**state.details, "evaluation": report}})
