"""The retrain DAG's decision: retrain when the model is old or the data is newer than it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator

from airflow_provider_mlops.operators.base import MlopsConfigMixin

if TYPE_CHECKING:
    from airflow.sdk import Context


def data_freshness(locations: dict[str, str]) -> datetime | None:
    """The newest modification time of any file in the local channels (None when unknown)."""
    newest: float | None = None
    for location in locations.values():
        path = Path(location)
        if "://" in location or not path.exists():
            continue
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            mtime = file.stat().st_mtime
            newest = mtime if newest is None else max(newest, mtime)
    return datetime.fromtimestamp(newest, UTC) if newest is not None else None


def retrain_decision(
    last_version_at: datetime | None,
    data_at: datetime | None,
    now: datetime,
    max_age_days: float | None,
    retrain_on_new_data: bool,
) -> tuple[bool, str]:
    """Pure decision logic; returns ``(retrain, why)``."""
    if last_version_at is None:
        return True, "no version is registered yet"
    age_days = (now - last_version_at).total_seconds() / 86400
    if max_age_days is not None and age_days >= max_age_days:
        return True, f"the last version is {age_days:.1f} days old (max_model_age_days: {max_age_days:g})"
    if retrain_on_new_data and data_at is not None and data_at > last_version_at:
        return True, f"the data changed at {data_at.isoformat()}, after the last version ({last_version_at.isoformat()})"
    reason = f"the last version is {age_days:.1f} days old"
    if max_age_days is not None:
        reason += f" (< {max_age_days:g})"
    reason += " and no newer data" if retrain_on_new_data else " and data freshness is not checked"
    return False, reason


class MlopsRetrainDecisionOperator(MlopsConfigMixin, BaseBranchOperator):
    """
    Decide whether to retrain, from the registry's last version time and the data's freshness.

    The decision and its reason are recorded in the registry's event log and in XCom; the
    branch goes to ``trigger_task_id`` or ``skip_task_id``.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param trigger_task_id: the task that starts the train DAG.
    :param skip_task_id: the task that records a skip.
    """

    def __init__(
        self,
        *,
        config_path: str,
        config_root: str | None = None,
        trigger_task_id: str = "trigger_train",
        skip_task_id: str = "skip_retrain",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.config_path = config_path
        self.config_root = config_root
        self.trigger_task_id = trigger_task_id
        self.skip_task_id = skip_task_id

    def choose_branch(self, context: Context) -> str:
        cfg = self.loaded.config
        latest = self.registry.latest(self.group)
        last_at = datetime.fromisoformat(latest.created_at) if latest else None
        channels = {k: self.loaded.resolve(v) for k, v in cfg.training.channels.items()}
        retrain, why = retrain_decision(
            last_at, data_freshness(channels), datetime.now(UTC),
            cfg.schedule.max_model_age_days, cfg.schedule.retrain_on_new_data,
        )
        detail = {"retrain": retrain, "reason": why, "last_version": latest.semver if latest else None, "run_id": context["ti"].run_id}
        record = getattr(self.registry, "record_event", None)
        if record is not None:
            record(self.group, "retrain_decision", detail)
        context["ti"].xcom_push(key="decision", value=detail)
        self.log.info("Retrain %s: %s", "yes" if retrain else "no", why)
        return self.trigger_task_id if retrain else self.skip_task_id
