"""
The typed schema of ``mlops.yaml``.

Pure pydantic v2: no Airflow, boto3 or kubernetes import, so the CLI, the Lambda and the DAG
loader share it. Every model forbids unknown keys, so a typo is an error, not a silent default.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from airflow_provider_mlops.config.kubernetes import KubernetesSettings, KubernetesStep, kubernetes_problems
from airflow_provider_mlops.naming import NAME_PATTERN, NO_JOIN_RULE, RESOURCE_JOIN, model_group
from airflow_provider_mlops.versioning import SERIES_RE, SERIES_RULE

Backend = Literal["local", "sagemaker", "kubernetes"]
RegistryBackend = Literal["local", "sagemaker"]
ServingBackend = Literal["local", "sagemaker"]


def _no_join(value: str) -> str:
    if RESOURCE_JOIN in value:
        raise ValueError(f"{value!r} {NO_JOIN_RULE}; use one '-'")
    return value


Name = Annotated[str, Field(pattern=NAME_PATTERN), AfterValidator(_no_join)]
#: A duration: a number and a unit, s(econds), m(inutes), h(ours), d(ays) or w(eeks), e.g. ``7d``.
DURATION_PATTERN = r"^[1-9][0-9]{0,5}[smhdw]$"
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
HyperparameterValue = str | int | float | bool

#: Metrics whose direction is known. Any other metric must say ``greater_is_better``.
KNOWN_METRICS: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1": True,
    "precision": True,
    "recall": True,
    "roc_auc": True,
    "r2": True,
    "mse": False,
    "rmse": False,
    "mae": False,
    "log_loss": False,
}

CRON_FIELD = r"[\d*/,\-A-Za-z?LW#]+"
CRON_RE = re.compile(rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{CRON_FIELD}(\s+{CRON_FIELD}){{4,5}})$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MetricDefinition(_Model):
    """A regex that reads one metric from the training log, as SageMaker's MetricDefinitions."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/-]{1,255}$")] = Field(description="The metric's name, as it appears in the version's metrics", examples=['train_accuracy'])
    regex: Annotated[str, Field(min_length=1, max_length=500)] = Field(description="A regular expression with one capturing group around the number, matched against the training log", examples=['train_accuracy=([0-9.]+)'])

    @field_validator("regex")
    @classmethod
    def _compiles_with_one_group(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ValueError("must have one capturing group around the number, for example 'loss=([0-9.]+)'")
        return value


class Resources(_Model):
    """Compute for one step. SageMaker reads the instance keys, Kubernetes the cpu/memory/gpu keys."""

    instance_type: Annotated[str, Field(pattern=r"^(local|ml\.[a-z0-9]+\.[a-z0-9]+)$")] = Field(default="ml.m5.large", description="The SageMaker instance type (ml.*), or 'local'", examples=['ml.m5.large'])
    instance_count: Annotated[int, Field(ge=1, le=100)] = Field(default=1, description="How many instances a SageMaker job runs on (1-100)")
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)] = Field(default=30, description="The SageMaker job's storage volume in GB")
    max_runtime_seconds: Annotated[int, Field(ge=60, le=28 * 24 * 3600)] = Field(default=24 * 3600, description="The longest a job may run, in seconds (60 s to 28 days); then it is stopped", examples=[86400])
    use_spot: bool = Field(default=False, description="Run SageMaker training on managed spot capacity (set max_wait_seconds and checkpoint_uri)")
    max_wait_seconds: Annotated[int, Field(ge=60)] | None = Field(default=None, description="With use_spot: how long to wait for spot capacity plus the run, in seconds (>= max_runtime_seconds)", examples=[172800])
    checkpoint_uri: str | None = Field(default=None, description="Where a spot training job keeps its checkpoints, an s3:// URI", examples=['s3://my-bucket/checkpoints/fraud'])
    gpus: Annotated[int, Field(ge=0, le=16)] = Field(default=0, description="GPUs per pod on Kubernetes (0-16)")
    cpu: Annotated[str, Field(pattern=r"^\d+(\.\d+)?m?$")] | None = Field(default=None, description="The CPU request on Kubernetes, in cores or millicores", examples=['2', '500m'])
    memory: Annotated[str, Field(pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")] | None = Field(default=None, description="The memory request on Kubernetes", examples=['4Gi'])

    @model_validator(mode="after")
    def _spot_needs_wait(self) -> Resources:
        if self.use_spot and self.max_wait_seconds is not None and self.max_wait_seconds < self.max_runtime_seconds:
            raise ValueError(
                f"max_wait_seconds: {self.max_wait_seconds} must be >= max_runtime_seconds "
                f"({self.max_runtime_seconds}) for managed spot training"
            )
        return self


class Training(_Model):
    """How the model is trained. The entrypoint follows the SageMaker training-toolkit contract."""

    entrypoint: Annotated[str, Field(min_length=1)] = Field(default="train.py", description="The training script, relative to source_dir; it follows the SageMaker training-toolkit contract", examples=['train.py'])
    source_dir: str = Field(default=".", description="The folder holding the code, relative to mlops.yaml", examples=['.'])
    backend: Backend | None = Field(default=None, description="Where training runs (default: the top-level backend)")
    hyperparameters: dict[str, HyperparameterValue] = Field(description="Passed to the entrypoint as hyperparameters.json and --name value arguments", examples=[{'C': 1.0, 'max_iter': 500}], default_factory=dict)
    channels: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")], str] = Field(description="Data channels: name to a path (relative to mlops.yaml) or an s3:// URI; each becomes SM_CHANNEL_<NAME>", examples=[{'train': 'data/train'}],
        default_factory=lambda: {"train": "data/train"}
    )
    resources: Resources = Field(description="The compute the training job gets", default_factory=Resources)
    metric_definitions: list[MetricDefinition] = Field(description="Metrics read from the training log by regex, recorded with the version", default_factory=list)
    environment: dict[Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")], str] = Field(description="Environment variables for the training job (no secrets: use the backend's secret store)", examples=[{'LOG_LEVEL': 'info'}], default_factory=dict)
    kubernetes: KubernetesStep | None = Field(default=None, description="Kubernetes settings for the training pod, over the top-level kubernetes block")

    @field_validator("channels")
    @classmethod
    def _at_least_one_channel(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("needs at least one data channel, for example {train: data/train}")
        return value


class GateRule(_Model):
    """
    The gate for one metric.

    ``min``/``max`` bound the candidate's value. ``min_delta`` bounds its improvement over the
    production model, in the metric's good direction: ``0`` means "not worse", ``-0.01`` allows a
    regression of 0.01, ``0.01`` demands an improvement of 0.01.
    """

    min: float | None = Field(default=None, description="The lowest value the candidate may have", examples=[0.9])
    max: float | None = Field(default=None, description="The highest value the candidate may have", examples=[0.5])
    min_delta: float | None = Field(default=None, description="The least improvement over the production version, in the metric's good direction (0: not worse; -0.01 allows a 0.01 regression)", examples=[-0.01])
    greater_is_better: bool | None = Field(default=None, description="The metric's direction, for a metric the product does not know")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> GateRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min: {self.min} is greater than max ({self.max})")
        if self.min is None and self.max is None and self.min_delta is None:
            raise ValueError("a gate rule needs at least one of min, max or min_delta")
        return self


class Evaluation(_Model):
    """How the model is evaluated, on a held-out channel, and gated."""

    entrypoint: Annotated[str, Field(min_length=1)] = Field(default="evaluate.py", description="The evaluation script, relative to training.source_dir; it writes metrics.json", examples=['evaluate.py'])
    backend: Backend | None = Field(default=None, description="Where evaluation runs (default: training's backend)")
    task: Literal["classification", "regression"] = Field(default="classification", description="classification or regression: picks the default metrics")
    channel: str = Field(default="test", description="The held-out data channel the model is evaluated on", examples=['test'])
    data: str | None = Field(default=None, description="Where that channel's data is, a path relative to mlops.yaml or an s3:// URI (default: data/<channel>)", examples=['data/test'])
    metrics: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(description="The metrics evaluation reports (default: f1, precision, recall, accuracy; or mse, mae, r2)", examples=[['f1', 'precision', 'recall', 'accuracy']], default_factory=list)
    primary_metric: str | None = Field(default=None, description="The metric shown first and compared across versions (default: the first of metrics)", examples=['f1'])
    greater_is_better: dict[str, bool] = Field(description="The direction of metrics the product does not know", examples=[{'auc_pr': True}], default_factory=dict)
    gate: dict[str, GateRule] = Field(description="Rules a candidate must pass to be deployable, by metric (each one of metrics)", examples=[{'f1': {'min': 0.9, 'min_delta': -0.01}}], default_factory=dict)
    resources: Resources | None = Field(default=None, description="The compute the evaluation job gets (default: training's)")
    kubernetes: KubernetesStep | None = Field(default=None, description="Kubernetes settings for the evaluation pod, over the top-level kubernetes block")

    @model_validator(mode="after")
    def _metrics_consistent(self) -> Evaluation:
        metrics = self.metrics or (["f1", "precision", "recall", "accuracy"] if self.task == "classification" else ["mse", "mae", "r2"])
        object.__setattr__(self, "metrics", metrics)
        if self.primary_metric is None:
            object.__setattr__(self, "primary_metric", metrics[0])
        elif self.primary_metric not in metrics:
            raise ValueError(f"primary_metric: '{self.primary_metric}' is not one of metrics {metrics}")
        for name in self.gate:
            if name not in metrics:
                raise ValueError(f"gate.{name}: gate metric '{name}' is not one of metrics {metrics}; add it to metrics")
        for name in metrics:
            if self.direction(name) is None:
                raise ValueError(
                    f"metrics: metric '{name}' has no known direction; add 'greater_is_better: {{{name}: true}}' "
                    f"(known metrics: {', '.join(sorted(KNOWN_METRICS))})"
                )
        return self

    def direction(self, metric: str) -> bool | None:
        """True when a greater value of ``metric`` is better."""
        rule = self.gate.get(metric)
        if rule is not None and rule.greater_is_better is not None:
            return rule.greater_is_better
        if metric in self.greater_is_better:
            return self.greater_is_better[metric]
        return KNOWN_METRICS.get(metric)


class Registry(_Model):
    """
    Where versions are registered.

    ``home`` (the local registry's folder, relative to mlops.yaml) and ``model_package_group``
    must stay in the model's own namespace (its folder; ``<project>--<model>``) unless the
    organisation's defaults set ``organisation.allow_resource_overrides``.
    """

    backend: RegistryBackend | None = Field(default=None, description="Where versions are registered: local (SQLite under the MLOps home) or sagemaker (the Model Registry)")
    home: str | None = Field(default=None, description="The local registry's folder, relative to mlops.yaml (default: $MLOPS_HOME or ~/.mlops)", examples=['.mlops'])
    model_package_group: str | None = Field(default=None, description="The registry group (default: <project>--<model>); another name needs organisation.allow_resource_overrides", examples=['demo--breast-cancer'])


class Approver(_Model):
    """An Airflow user, by the id its auth manager gives (``id``) and a display ``name``."""

    id: Annotated[str, Field(min_length=1, max_length=256)] = Field(description="The user's id in Airflow's auth manager (FAB: a number)", examples=['42'])
    name: Annotated[str, Field(min_length=1, max_length=256)] = Field(description="The user's display name", examples=['carol'])


#: A user: the user name (the simple auth manager's id), or ``{id, name}`` where ids differ from names (FAB).
ApproverRef = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^\S(.*\S)?$")] | Approver


class Canary(_Model):
    size_percent: Annotated[int, Field(ge=1, le=99)] = Field(default=10, description="The share of traffic the new version gets first (1-99)", examples=[10])
    wait_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(default=300, description="How long the canary runs before all traffic moves, in seconds", examples=[300])


class Linear(_Model):
    step_percent: Annotated[int, Field(ge=1, le=99)] = Field(default=20, description="The share of traffic moved at each step (1-99)", examples=[20])
    wait_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(default=120, description="The wait between steps, in seconds", examples=[120])


class SmokeTest(_Model):
    """The request a deploy sends to the new endpoint before it is promoted."""

    payload: str | None = Field(default=None, description="The request body sent to the new endpoint before promotion", examples=['{"instances": [[14.1, 20.3]]}'])
    payload_file: str | None = Field(default=None, description="A file holding that body, relative to mlops.yaml", examples=['smoke_payload.json'])
    content_type: str = Field(default="application/json", description="The request's content type", examples=['application/json'])


class Deployment(_Model):
    """Where and how an approved version is served."""

    endpoint_name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")] | None = Field(default=None, description="The endpoint's name (default: <project>--<model>); another name needs organisation.allow_resource_overrides", examples=['demo--breast-cancer'])
    backend: ServingBackend | None = Field(default=None, description="Where the model is served: local or sagemaker (default: from the top-level backend)")
    approval: Literal["manual", "auto"] = Field(default="manual", description="manual: a person approves each deploy in the Airflow UI or with mlops approve; auto: a version that passed its gate deploys")
    strategy: Literal["all_at_once", "canary", "linear"] = Field(default="all_at_once", description="How traffic moves to the new version (canary and linear: SageMaker blue/green only)")
    canary: Canary = Field(description="The canary traffic shift, with strategy: canary", default_factory=Canary)
    linear: Linear = Field(description="The linear traffic shift, with strategy: linear", default_factory=Linear)
    termination_wait_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(default=0, description="How long SageMaker keeps the old fleet after the shift, in seconds", examples=[0])
    auto_rollback_alarms: list[str] = Field(description="CloudWatch alarms that roll a SageMaker blue/green update back", examples=[['fraud-5xx-high']], default_factory=list)
    instance_type: str = Field(default="ml.m5.large", description="The SageMaker endpoint's instance type", examples=['ml.m5.large'])
    instance_count: Annotated[int, Field(ge=1)] = Field(default=1, description="The SageMaker endpoint's instance count", examples=[1])
    inference_entrypoint: str = Field(default="inference.py", description="The serving script (model_fn, predict_fn, ...), relative to training.source_dir", examples=['inference.py'])
    content_types: list[str] = Field(description="The request content types the model accepts", examples=[['application/json']], default_factory=lambda: ["application/json"])
    response_types: list[str] = Field(description="The response content types the model returns", examples=[['application/json']], default_factory=lambda: ["application/json"])
    port: Annotated[int, Field(ge=1024, le=65535)] | None = Field(default=None, description="The local endpoint's port on 127.0.0.1 (default: a free one, kept across deploys)", examples=[8080])
    health_check_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(default=60, description="How long a new model server may take to answer /ping, in seconds", examples=[60])
    keep_previous: Annotated[int, Field(ge=0, le=20)] = Field(default=2, description="How many earlier SageMaker endpoint configs to keep for rollback (0-20)", examples=[2])
    smoke_test: SmokeTest = Field(description="The request sent to the new endpoint before it is promoted", default_factory=SmokeTest)
    approvers: list[ApproverRef] = Field(
        default_factory=list,
        description="Who may approve or reject a deploy (HITL assigned_users); empty: anyone Airflow lets answer",
    )
    gate_override_by: list[ApproverRef] = Field(
        default_factory=list,
        description="Who may approve a version that failed its gate, with a reason (an override); empty: nobody",
    )
    forbid_self_approval: bool = Field(
        default=False, description="Refuse an approval by the person or pipeline that requested the version's training"
    )
    approval_timeout: Annotated[str, Field(pattern=DURATION_PATTERN)] | None = Field(
        default=None, description="How long an approval request waits, e.g. 7d or 12h; then it is rejected as 'expired'"
    )

    @property
    def approval_timeout_seconds(self) -> int | None:
        if self.approval_timeout is None:
            return None
        return int(self.approval_timeout[:-1]) * _DURATION_SECONDS[self.approval_timeout[-1]]


def _sagemaker_guardrail(deployment: Deployment) -> str | None:
    """A SageMaker blue/green guardrail that local serving would ignore, as ``field: problem``."""
    fix = "or serve on SageMaker (deployment.backend: sagemaker, with registry.backend: sagemaker)"
    if deployment.strategy != "all_at_once":
        return (f"deployment.strategy: '{deployment.strategy}' is a SageMaker blue/green traffic shift, and local "
                "serving has none: the local endpoint switches all traffic to the new version as soon as it is "
                f"healthy. Set strategy: all_at_once, {fix}")
    if deployment.auto_rollback_alarms:
        return (f"deployment.auto_rollback_alarms: {deployment.auto_rollback_alarms} are CloudWatch alarms that "
                "SageMaker watches to roll back a blue/green update, and local serving has no such rollback. Remove "
                "them (where a defaults file sets them, set auto_rollback_alarms: [] in this model's mlops.yaml), "
                f"{fix}")
    return None


class Schedule(_Model):
    """When the retrain DAG runs, and what makes it retrain."""

    retrain_cron: str | None = Field(default=None, description="When the retrain DAG runs: a 5-field cron expression or a preset (unset: never on a schedule)", examples=['0 3 * * *', '@daily'])
    max_model_age_days: Annotated[float, Field(gt=0)] | None = Field(default=30, description="Retrain when the production version is older than this many days", examples=[30])
    retrain_on_new_data: bool | None = Field(
        default=None,
        description="Retrain when a training channel holds a file or S3 object newer than the newest version. "
        "Only local paths and s3:// prefixes can be checked; unset: checked when every training channel is one",
    )

    @field_validator("retrain_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not CRON_RE.fullmatch(value.strip()):
            raise ValueError("must be a cron expression of 5 fields (for example '0 3 * * *') or a preset like @daily")
        return value


NotificationEvent = Literal[
    "training_finished", "awaiting_approval", "deployed", "rejected", "rolled_back", "failure"
]


ALL_EVENTS: tuple[NotificationEvent, ...] = (
    "training_finished", "awaiting_approval", "deployed", "rejected", "rolled_back", "failure"
)


class SlackTarget(_Model):
    connection_id: str = Field(default="slack_default", description="The Airflow Slack connection (webhook or bot token)", examples=['slack_default'])
    channel: str | None = Field(default=None, description="The Slack channel (default: the connection's)", examples=['#ml-alerts'])


class SnsTarget(_Model):
    topic_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")] = Field(description="The SNS topic's ARN", examples=['arn:aws:sns:eu-west-1:123456789012:ml-alerts'])
    aws_conn_id: str = Field(default="aws_default", description="The Airflow AWS connection that publishes", examples=['aws_default'])


class Notifications(_Model):
    slack: SlackTarget | None = Field(default=None, description="Send the events to Slack")
    sns: SnsTarget | None = Field(default=None, description="Send the events to an SNS topic")
    events: list[NotificationEvent] = Field(description="Which events notify (default: all)", examples=[['awaiting_approval', 'deployed', 'failure']], default_factory=lambda: list(ALL_EVENTS))


class Aws(_Model):
    """
    The AWS side of the SageMaker backends.

    ``conn_id`` is the Airflow AWS connection every call goes through; ``role_arn`` the execution
    role of jobs and models; ``artifacts_uri`` the S3 prefix for models, evaluation output,
    checkpoints and version records; ``tag_model_packages`` also tags each model package with
    its semver (needs ``sagemaker:AddTags`` on model packages); ``poll_interval_seconds`` is how
    often jobs and endpoints are polled.
    """

    conn_id: str = Field(default="aws_default", description="The Airflow AWS connection every call goes through", examples=['aws_default'])
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")] | None = Field(default=None, description="The AWS region (default: the connection's)", examples=['eu-west-1'])
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")] | None = Field(default=None, description="The SageMaker execution role of jobs and models", examples=['arn:aws:iam::123456789012:role/SageMakerExecution'])
    artifacts_uri: Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")] | None = Field(default=None, description="The S3 prefix for models, evaluation output, checkpoints and version records", examples=['s3://my-ml-bucket/mlops'])
    tag_model_packages: bool = Field(default=True, description="Also tag each model package with its semver (needs sagemaker:AddTags)")
    poll_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(default=30.0, description="How often jobs and endpoints are polled, in seconds", examples=[30])


class Local(_Model):
    """
    How the local backend runs a model's code. ``process`` (the default) runs the entrypoints with
    the worker's Python; ``container`` runs training, evaluation and the model server in the
    model's image (``image``), with the SageMaker contract's paths mounted.
    """

    runtime: Literal["process", "container"] = Field(default="process", description="process: run the entrypoints with the worker's Python; container: in the model's image")


class Organisation(_Model):
    """
    What only the organisation may decide: set in the ``mlops-defaults.yaml`` at the root of the
    config folders (the platform team's), never in a model's mlops.yaml or a nearer defaults file.

    ``allow_resource_overrides`` lets configs name registry groups, endpoints and registry
    homes outside their own namespace.
    """

    allow_resource_overrides: bool = Field(default=False, description="Let configs name registry groups, endpoints and registry homes outside their own namespace (root mlops-defaults.yaml only)")


class MlopsConfig(_Model):
    """The whole of one model's ``mlops.yaml``."""

    project: Name = Field(description="The project (team or product) the model belongs to: 1-32 lowercase letters, digits and '-'", examples=['demo'])
    model: Name = Field(description="The model's name within the project: 1-32 lowercase letters, digits and '-'", examples=['breast-cancer'])
    version: str = Field(pattern=SERIES_RE.pattern, description="The version series MAJOR.MINOR; the registry allocates PATCH", examples=['1.0'])
    description: str = Field(default="", description="What the model does, shown on its DAGs and model card", examples=['Logistic regression on the Wisconsin breast-cancer data'])
    owner: str = Field(default="mlops", description="The team or person who owns the model (the DAGs' owner)", examples=['data-science'])
    tags: list[str] = Field(description="Tags added to the model's DAGs", examples=[['classification']], default_factory=list)
    backend: Backend = Field(default="local", description="Where jobs run by default: local, sagemaker or kubernetes")
    image: str | None = Field(default=None, description="The container image of training, evaluation and serving (required for sagemaker, kubernetes and local.runtime: container)", examples=['123456789012.dkr.ecr.eu-west-1.amazonaws.com/demo/breast-cancer:1.0.7'])
    repository: str | None = Field(default=None, description="The model's source repository, for links and lineage", examples=['https://gitlab.example.com/ds/breast-cancer'])
    training: Training = Field(description="How the model is trained", default_factory=Training)
    evaluation: Evaluation = Field(description="How the model is evaluated and gated", default_factory=Evaluation)
    registry: Registry = Field(description="Where versions are registered", default_factory=Registry)
    deployment: Deployment = Field(description="Where and how an approved version is served, and who approves", default_factory=Deployment)
    schedule: Schedule = Field(description="When and why the retrain DAG retrains", default_factory=Schedule)
    notifications: Notifications = Field(description="Slack and SNS notifications of pipeline events", default_factory=Notifications)
    aws: Aws = Field(description="The AWS side of the SageMaker backends", default_factory=Aws)
    kubernetes: KubernetesSettings = Field(description="Kubernetes settings of every pod (the kubernetes backend)", default_factory=KubernetesSettings)
    local: Local = Field(description="How the local backend runs the model's code", default_factory=Local)
    organisation: Organisation = Field(description="Platform-team settings; only in the root mlops-defaults.yaml", default_factory=Organisation)

    @field_validator("version", mode="before")
    @classmethod
    def _series(cls, value: Any) -> str:
        text = str(value) if isinstance(value, (int, float)) else value
        if not isinstance(text, str) or not SERIES_RE.fullmatch(text):
            raise ValueError(f"must be {SERIES_RULE}; PATCH is allocated by the registry")
        return text

    @model_validator(mode="after")
    def _backends_fit(self) -> MlopsConfig:
        uses_remote = {self.training_backend, self.evaluation_backend} - {"local"}
        if uses_remote and not self.image:
            raise ValueError(
                f"backend: {sorted(uses_remote)[0]} runs a container image, so 'image' must be set to the ECR image URI"
            )
        if self.local.runtime == "container" and not self.image and "local" in (
            self.training_backend, self.evaluation_backend, self.serving_backend
        ):
            raise ValueError(
                "local.runtime: container runs the model's image, so 'image' must be set to a tag the local engine has "
                "(for example image: localhost/demo/model:dev, built with `podman build -t localhost/demo/model:dev .`), "
                "or use local.runtime: process"
            )
        if self.evaluation.channel in ("model",):
            raise ValueError("evaluation.channel: 'model' is reserved for the trained model artifacts")
        if "sagemaker" in (self.training_backend, self.evaluation_backend, self.registry_backend, self.serving_backend):
            missing = [f"aws.{k}" for k in ("role_arn", "artifacts_uri") if not getattr(self.aws, k)]
            if missing:
                raise ValueError(f"the sagemaker backend needs {' and '.join(missing)} (the execution role ARN and an s3:// prefix)")
        if "sagemaker" in (self.training_backend, self.evaluation_backend):
            local = {k: v for k, v in self.training.channels.items() if not v.startswith("s3://")}
            if self.evaluation.data is not None and not self.evaluation.data.startswith("s3://"):
                local["evaluation.data"] = self.evaluation.data
            elif self.evaluation.data is None and self.evaluation.channel not in self.training.channels:
                local["evaluation.data"] = f"(unset; the default is data/{self.evaluation.channel})"
            if local:
                raise ValueError(f"SageMaker jobs read their data from S3: set these channels to s3:// URIs: {local}")
        if self.serving_backend == "sagemaker" and self.registry_backend != "sagemaker":
            raise ValueError(
                "deployment.backend: sagemaker deploys model packages from the SageMaker Model Registry: "
                "set registry.backend: sagemaker"
            )
        if k8s_problems := kubernetes_problems(self):
            raise ValueError(k8s_problems[0])
        if self.serving_backend == "local" and (guardrail := _sagemaker_guardrail(self.deployment)):
            raise ValueError(guardrail)
        # isolation and references read this module's classes: imported here, once all are loaded.
        from airflow_provider_mlops.config.isolation import isolation_problem
        from airflow_provider_mlops.config.references import freshness_problem

        if problem := freshness_problem(self) or isolation_problem(self):
            raise ValueError(problem)
        return self

    @property
    def training_backend(self) -> Backend:
        return self.training.backend or self.backend

    @property
    def evaluation_backend(self) -> Backend:
        return self.evaluation.backend or self.training_backend

    @property
    def registry_backend(self) -> RegistryBackend:
        return self.registry.backend or ("sagemaker" if self.backend == "sagemaker" else "local")

    @property
    def serving_backend(self) -> ServingBackend:
        return self.deployment.backend or ("sagemaker" if self.backend == "sagemaker" else "local")

    @property
    def endpoint_name(self) -> str:
        return self.deployment.endpoint_name or model_group(self.project, self.model)

    @property
    def registry_group(self) -> str:
        return self.registry.model_package_group or model_group(self.project, self.model)

