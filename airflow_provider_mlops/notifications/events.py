"""
From a task's context and a model's config to a sent notification: one function per event.

Operators and callbacks call these; each builds the :class:`~.messages.Message` with the right
links, drops it when the model did not subscribe to the event (``notifications.events``) or has
no channel, and sends it. None of them raises: a notification never fails a task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops.notifications import links as ui
from airflow_provider_mlops.notifications import messages
from airflow_provider_mlops.notifications.send import DEFAULT_POLICY, Delivery, RetryPolicy, send

if TYPE_CHECKING:
    from airflow_provider_mlops.config.loader import LoadedConfig

logger = logging.getLogger(__name__)


def publish(
    loaded: LoadedConfig, message: messages.Message, *, log: Any = logger, policy: RetryPolicy = DEFAULT_POLICY
) -> list[Delivery]:
    """Send ``message`` if the model subscribed to its event and configured a channel; never raises."""
    settings = loaded.config.notifications
    if message.event not in settings.events:
        log.info("Notification %s is not in notifications.events of %s; not sent", message.event, loaded.path)
        return []
    if settings.slack is None and settings.sns is None:
        log.info("No notifications.slack or notifications.sns in %s; %s not sent", loaded.path, message.event)
        return []
    return send(message, settings, policy=policy, log=log)


def _ids(loaded: LoadedConfig) -> tuple[str, str]:
    return loaded.config.project, loaded.config.model


def _ti(context: Mapping[str, Any]) -> Any:
    return context.get("ti") or context.get("task_instance")


def _mask(text: str) -> str:
    """Apply Airflow's secrets masker (connection passwords and masked variables) to ``text``."""
    try:
        from airflow.sdk._shared.secrets_masker import redact

        return str(redact(text))
    except Exception:  # no masker outside Airflow; the text is still truncated
        return text


def _region(loaded: LoadedConfig, arn: str | None = None) -> str | None:
    return loaded.config.aws.region or ui.region_of(arn)


def _run_links(context: Mapping[str, Any]) -> dict[str, str | None]:
    ti = _ti(context)
    return {"Airflow run": ui.dag_run_url(ti.dag_id, ti.run_id)} if ti is not None else {}


def training_finished(loaded: LoadedConfig, context: Mapping[str, Any], version: Mapping[str, Any], *, log: Any = logger) -> list[Delivery]:
    """The train DAG registered a candidate (gate passed or not)."""
    try:
        found = dict(_run_links(context))
        if loaded.config.registry_backend == "sagemaker":
            found["SageMaker model registry"] = ui.sagemaker_model_group_url(_region(loaded, version.get("arn")), version.get("group", ""))
        message = messages.training_finished(*_ids(loaded), version, links=found)
    except Exception as exc:
        log.warning("Could not build the training_finished notification: %s", exc)
        return []
    return publish(loaded, message, log=log)


def awaiting_approval(loaded: LoadedConfig, context: Mapping[str, Any], version: Mapping[str, Any], *, log: Any = logger) -> list[Delivery]:
    """A deploy run waits in the approval task."""
    try:
        ti = _ti(context)
        found: dict[str, str | None] = {"Approve or reject": ui.approval_url(ti.dag_id, ti.run_id, ti.task_id), **_run_links(context)}
        message = messages.awaiting_approval(*_ids(loaded), version, endpoint=loaded.config.endpoint_name, links=found)
    except Exception as exc:
        log.warning("Could not build the awaiting_approval notification: %s", exc)
        return []
    return publish(loaded, message, log=log)


def deployed(loaded: LoadedConfig, context: Mapping[str, Any], deployment: Mapping[str, Any], *, log: Any = logger) -> list[Delivery]:
    """A version passed its smoke test and was promoted to production."""
    try:
        cfg = loaded.config
        found = dict(_run_links(context))
        if cfg.serving_backend == "sagemaker":
            found["SageMaker endpoint"] = ui.sagemaker_endpoint_url(_region(loaded), deployment.get("endpoint", cfg.endpoint_name))
        elif deployment.get("url"):
            found["Endpoint"] = deployment["url"]
        message = messages.deployed(
            *_ids(loaded), deployment, strategy=cfg.deployment.strategy, backend=cfg.serving_backend, links=found
        )
    except Exception as exc:
        log.warning("Could not build the deployed notification: %s", exc)
        return []
    return publish(loaded, message, log=log)


def rejected(
    loaded: LoadedConfig, context: Mapping[str, Any], version: Mapping[str, Any], *, by: str, reason: str, log: Any = logger
) -> list[Delivery]:
    """A person rejected a deploy in the approval task."""
    try:
        message = messages.rejected(*_ids(loaded), version, by=by, reason=reason, links=_run_links(context))
    except Exception as exc:
        log.warning("Could not build the rejected notification: %s", exc)
        return []
    return publish(loaded, message, log=log)


def rolled_back(
    loaded: LoadedConfig,
    context: Mapping[str, Any],
    *,
    endpoint: str,
    failed_version: str,
    restored_version: str,
    reason: str,
    log: Any = logger,
) -> list[Delivery]:
    """The smoke test failed and the previous version was put back on the endpoint."""
    try:
        found = dict(_run_links(context))
        ti = _ti(context)
        if ti is not None:
            found["Log"] = ui.task_log_url(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "try_number", None))
        if loaded.config.serving_backend == "sagemaker":
            found["SageMaker endpoint"] = ui.sagemaker_endpoint_url(_region(loaded), endpoint)
        message = messages.rolled_back(
            *_ids(loaded), endpoint=endpoint, failed_version=failed_version, restored_version=restored_version,
            reason=reason, links=found,
        )
    except Exception as exc:
        log.warning("Could not build the rolled_back notification: %s", exc)
        return []
    return publish(loaded, message, log=log)


def task_failed(loaded: LoadedConfig, context: Mapping[str, Any], *, log: Any = logger) -> list[Delivery]:
    """A task failed for good: DAG, task, try, an error summary and a link to its log."""
    try:
        ti = _ti(context)
        error = context.get("exception")
        summary = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error or "no error recorded")
        summary = _mask(summary)
        try_number = getattr(ti, "try_number", None)
        found = {"Log": ui.task_log_url(ti.dag_id, ti.run_id, ti.task_id, try_number), **_run_links(context)}
        message = messages.task_failure(
            *_ids(loaded), dag_id=ti.dag_id, task_id=ti.task_id, try_number=try_number,
            max_tries=getattr(ti, "max_tries", None), error=summary, links=found,
        )
    except Exception as exc:
        log.warning("Could not build the failure notification: %s", exc)
        return []
    return publish(loaded, message, log=log)


def ci_job_failed(
    loaded: LoadedConfig,
    *,
    pipeline_url: str,
    job: str,
    stage: str,
    job_url: str | None = None,
    version: str | None = None,
    commit: str | None = None,
    source: str | None = None,
    log: Any = logger,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> list[Delivery]:
    """A job of the model's GitLab pipeline failed (``mlops notify ci-failure`` in the pipeline's last stage)."""
    try:
        message = messages.ci_job_failure(
            *_ids(loaded), pipeline_url=pipeline_url, job=job, stage=stage, version=version, commit=commit,
            source=source, links={"Job log": job_url, "GitLab pipeline": pipeline_url},
        )
    except Exception as exc:
        log.warning("Could not build the CI failure notification: %s", exc)
        return []
    return publish(loaded, message, log=log, policy=policy)
