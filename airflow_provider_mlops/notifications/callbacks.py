"""
Airflow notifiers that report pipeline events: a task failing, and a deploy awaiting approval.

Both are :class:`~airflow.sdk.BaseNotifier` subclasses, so Airflow calls them as task callbacks
(``on_failure_callback``) and as the HITL operator's ``notifiers``. They are set per task, not on
the DAG: a DAG-level notifier fails under ``dag.test()`` (seen with Airflow 3.3). They load the model's
config at run time, never at parse time (the task's pinned config when it has one), and never raise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

    from airflow_provider_mlops.config.loader import LoadedConfig


class _MlopsNotifier(BaseNotifier):
    """
    Base of the provider's notifiers: they carry the config's location, not a rendered message.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    template_fields = ()

    def __init__(self, *, config_path: str, config_root: str | None = None) -> None:
        super().__init__()
        self.config_path = config_path
        self.config_root = config_root

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Nothing is templated: the message is built from XCom and the config at run time."""

    def _loaded(self, context: Context) -> LoadedConfig:
        """The config the task's run is pinned to (docs/versions.md), else the file as it is now."""
        from pathlib import Path

        from airflow_provider_mlops import runtime
        from airflow_provider_mlops.config.loader import LoadedConfig

        pinned = getattr(context.get("task"), "__dict__", {}).get("loaded")
        if isinstance(pinned, LoadedConfig) and Path(pinned.path) == Path(self.config_path):
            return pinned
        return runtime.config_at(self.config_path, self.config_root)

    def notify(self, context: Context) -> None:
        try:
            self.send(context, self._loaded(context))
        except Exception as exc:  # a notification never fails or blocks the pipeline
            self.log.warning("%s could not notify: %s: %s", type(self).__name__, type(exc).__name__, exc)

    def send(self, context: Context, loaded: LoadedConfig) -> Any:
        raise NotImplementedError


class MlopsFailureNotifier(_MlopsNotifier):
    """
    ``on_failure_callback`` of every task of a model's DAGs: sends the ``failure`` event.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    """

    def send(self, context: Context, loaded: LoadedConfig) -> Any:
        from airflow_provider_mlops.notifications import events

        return events.task_failed(loaded, context, log=self.log)


class MlopsApprovalNotifier(_MlopsNotifier):
    """
    Notifier of the approval task: sends ``awaiting_approval`` with a link to Required Actions.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param resolve_task_id: the task whose XCom holds the version to approve.
    """

    def __init__(self, *, resolve_task_id: str = "resolve_version", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resolve_task_id = resolve_task_id

    def send(self, context: Context, loaded: LoadedConfig) -> Any:
        from airflow_provider_mlops.notifications import events

        version = context["ti"].xcom_pull(task_ids=self.resolve_task_id) or {}
        return events.awaiting_approval(loaded, context, version, log=self.log)
