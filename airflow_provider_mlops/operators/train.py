"""Train and evaluate: the two compute jobs of the train DAG."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_mlops import runtime
from airflow_provider_mlops.backends.base import JobSpec, JobState
from airflow_provider_mlops.operators.base import MlopsJobOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.config.models import MlopsConfig


def _path(loaded: LoadedConfig, location: str, field: str, backend: str) -> str:
    """A path of the config; on the local backend (the worker reads it) a link out of the model's folder is refused."""
    if backend == "local":
        return runtime.inside_model_folder(loaded, location, field)
    return loaded.resolve(location)


def training_job_spec(
    loaded: LoadedConfig,
    name: str,
    *,
    hyperparameters: dict[str, Any] | None = None,
    image: str | None = None,
    config: MlopsConfig | None = None,
) -> JobSpec:
    """
    The training job of ``loaded``'s model, as every backend receives it.

    :param hyperparameters: run-time overrides (the DAG run conf's), merged over the config's.
    :param image: the image to train with, instead of the config's (the run conf's ``image``).
    :param config: a variant of ``loaded.config`` to build from (paths still resolve from ``loaded``).
    """
    cfg = config or loaded.config
    return JobSpec(
        name=name,
        kind="training",
        entrypoint=cfg.training.entrypoint,
        source_dir=_path(loaded, cfg.training.source_dir, "training.source_dir", cfg.training_backend),
        image=image or cfg.image,
        hyperparameters={**cfg.training.hyperparameters, **(hyperparameters or {})},
        channels={k: _path(loaded, v, f"training.channels.{k}", cfg.training_backend)
                  for k, v in cfg.training.channels.items()},
        metric_definitions=[d.model_dump() for d in cfg.training.metric_definitions],
        resources=cfg.training.resources.model_dump(),
        environment=dict(cfg.training.environment),
    )


def evaluation_job_spec(
    loaded: LoadedConfig, name: str, *, model_uri: str, image: str | None, config: MlopsConfig | None = None
) -> JobSpec:
    """
    The evaluation job: the held-out channel and the trained model (channel ``model``).

    :param model_uri: where the training job left the model.
    :param image: the image to evaluate with (the training image), or None for local code.
    :param config: a variant of ``loaded.config`` to build from (paths still resolve from ``loaded``).
    """
    cfg = config or loaded.config
    held_out = cfg.evaluation.channel
    location = cfg.evaluation.data or cfg.training.channels.get(held_out) or f"data/{held_out}"
    resources = cfg.evaluation.resources or cfg.training.resources
    return JobSpec(
        name=name,
        kind="processing",
        entrypoint=cfg.evaluation.entrypoint,
        source_dir=_path(loaded, cfg.training.source_dir, "training.source_dir", cfg.evaluation_backend),
        image=image,
        channels={held_out: _path(loaded, location, "evaluation.data", cfg.evaluation_backend), "model": model_uri},
        resources=resources.model_dump(),
        environment=dict(cfg.training.environment),
    )


class MlopsTrainOperator(MlopsJobOperator):
    """
    Train the model on the config's compute backend.

    .. seealso:: The training container contract in the README ("Container contract").

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param deferrable: wait in the triggerer (default) instead of the worker.
    :param poll_interval: seconds between status checks.
    :return: ``{"job_name", "model_uri", "metrics", "hyperparameters", "channels", "image",
        "commit", "requested_by", "log_uri"}``, small JSON for XCom.
    """

    step = "training"

    def build_spec(self, context: Context, name: str) -> JobSpec:
        conf = runtime.parse_conf(runtime.TrainRunConf, context["dag_run"].conf, self.dag_id, self.loaded)
        return training_job_spec(self.loaded, name, hyperparameters=conf.hyperparameters, image=conf.image)

    def finish(self, context: Context, state: JobState) -> dict[str, Any]:
        conf = runtime.parse_conf(runtime.TrainRunConf, context["dag_run"].conf, self.dag_id, self.loaded)
        spec = training_job_spec(self.loaded, state.name, hyperparameters=conf.hyperparameters, image=conf.image)
        return {
            "job_name": state.name,
            "model_uri": state.model_uri,
            "metrics": state.metrics,
            "hyperparameters": spec.hyperparameters,
            "channels": spec.channels,
            "image": spec.image or runtime.code_digest(spec.source_dir),
            "commit": conf.commit or runtime.git_commit(spec.source_dir),
            "image_version": conf.version,
            "requested_by": conf.requested_by,
            "log_uri": state.log_uri,
        }


class MlopsEvaluateOperator(MlopsJobOperator):
    """
    Evaluate the trained model on the held-out channel, as a job of its own.

    The evaluation entrypoint reads ``SM_CHANNEL_<held-out>`` and ``SM_CHANNEL_MODEL`` and
    writes ``evaluation.json`` (``{"metrics": {...}, "confusion_matrix": ...}``) to
    ``SM_OUTPUT_DATA_DIR``.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param train_task_id: the task whose XCom holds the model location.
    :return: ``{"job_name", "metrics", "confusion_matrix", "report_uri"}``.
    """

    step = "evaluation"

    def __init__(self, *, train_task_id: str = "train", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_task_id = train_task_id

    def build_spec(self, context: Context, name: str) -> JobSpec:
        trained = context["ti"].xcom_pull(task_ids=self.train_task_id)
        image = trained.get("image") if self.loaded.config.image else None
        return evaluation_job_spec(self.loaded, name, model_uri=trained["model_uri"], image=image)

    def finish(self, context: Context, state: JobState) -> dict[str, Any]:
        evaluation = state.details.get("evaluation", {})
        wanted = self.loaded.config.evaluation.metrics
        missing = [m for m in wanted if m not in state.metrics]
        if missing:
            from airflow_provider_mlops.exceptions import BackendError

            raise BackendError(
                f"evaluation job {state.name} did not report {missing}; its evaluation.json must hold "
                f"{{\"metrics\": {{{', '.join(repr(m) + ': <number>' for m in wanted)}}}}}"
            )
        return {
            "job_name": state.name,
            "metrics": {m: state.metrics[m] for m in wanted},
            "confusion_matrix": evaluation.get("confusion_matrix"),
            "report_uri": state.output_uri,
        }
