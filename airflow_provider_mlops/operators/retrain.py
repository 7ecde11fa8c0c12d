"""
The retrain DAG's steps: decide whether to retrain, then start the train DAG from the last release.

The decision never trains a model that has no version (its first training comes from CI or a
person) and never starts a second train run while one is queued or running.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_mlops import runtime
from airflow_provider_mlops.naming import dag_id
from airflow_provider_mlops.operators.base import MlopsConfigMixin
from airflow_provider_mlops.registry.releases import Release, last_release

if TYPE_CHECKING:
    from airflow.sdk import Context

NO_VERSION_REASON = "no version is registered yet: the first training comes from CI or a person"
#: The train run states that count as "a training is under way".
ACTIVE_RUN_STATES = ["queued", "running"]


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
    active_train_runs: int = 0,
) -> tuple[bool, str]:
    """
    Pure decision logic.

    :param last_version_at: when the newest version was registered; None when there is none.
    :param data_at: the newest modification time of the training data, when known.
    :param now: the time of the decision.
    :param max_age_days: retrain when the newest version is this old.
    :param retrain_on_new_data: retrain when the data is newer than the newest version.
    :param active_train_runs: the model's train runs now queued or running.
    :return: ``(retrain, why)``.
    """
    if active_train_runs:
        return False, f"a train run is already queued or running ({active_train_runs}): one training at a time"
    if last_version_at is None:
        return False, NO_VERSION_REASON
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

    No version registered, or a train run already queued or running, means no retrain. When it
    retrains, the train run's conf carries the last release (docs/versions.md): the retrain
    run's own conf (CI's retrain job), else ``release.json`` beside mlops.yaml, else the lineage
    of the newest version that records one. The decision, its reason and that conf are recorded
    in the registry's event log and in XCom (key ``decision``); the branch goes to
    ``trigger_task_id`` or ``skip_task_id``.

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

    @property
    def train_dag_id(self) -> str:
        cfg = self.loaded.config
        return dag_id(cfg.project, cfg.model, "train")

    def choose_branch(self, context: Context) -> str:
        cfg = self.loaded.config
        conf = runtime.parse_conf(runtime.RetrainRunConf, context["dag_run"].conf, self.dag_id, self.loaded)
        ti = context["ti"]
        active = ti.get_dr_count(dag_id=self.train_dag_id, states=ACTIVE_RUN_STATES)
        latest = self.registry.latest(self.group)
        last_at = datetime.fromisoformat(latest.created_at) if latest else None
        channels = {k: self.loaded.resolve(v) for k, v in cfg.training.channels.items()}
        retrain, why = retrain_decision(
            last_at, data_freshness(channels), datetime.now(UTC),
            cfg.schedule.max_model_age_days, cfg.schedule.retrain_on_new_data, active,
        )
        detail: dict[str, Any] = {"retrain": retrain, "reason": why, "last_version": latest.semver if latest else None,
                                  "run_id": ti.run_id}
        if retrain:
            detail.update(self._train_conf(conf))
        record = getattr(self.registry, "record_event", None)
        if record is not None:
            record(self.group, "retrain_decision", detail)
        ti.xcom_push(key="decision", value=detail)
        self.log.info("Retrain %s: %s", "yes" if retrain else "no", why)
        return self.trigger_task_id if retrain else self.skip_task_id

    def _train_conf(self, conf: Any) -> dict[str, Any]:
        """The train run's conf: who asked, and the last release (validated as the train DAG will)."""
        cfg = self.loaded.config
        release = Release(version=conf.version, image=conf.image, commit=conf.commit)
        source = "the retrain run's conf"
        if not release:
            release, source = last_release(runtime.release_file(self.loaded), cfg.project, cfg.model,
                                           self.registry.list_versions(self.group))
        train_conf = {"requested_by": conf.requested_by or "retrain-schedule", **release.train_conf(cfg.version)}
        runtime.parse_conf(runtime.TrainRunConf, train_conf, self.train_dag_id, self.loaded)
        self.log.info("Training from the release %s (from %s)", release.describe(), source)
        return {"release_source": source, "train_conf": train_conf}


class MlopsTriggerTrainOperator(TriggerDagRunOperator):
    """
    Start the model's train DAG with the conf the retrain decision chose (the last release).

    The run id derives from the retrain run, so a retried task never starts a second training:
    it finds the run its first try started and skips.

    .. seealso:: :class:`MlopsRetrainDecisionOperator`, ``docs/versions.md``

    :param trigger_dag_id: the train DAG. (templated)
    :param decide_task_id: the decision task; its XCom ``decision`` holds ``train_conf``.
    :return: what ``TriggerDagRunOperator`` returns.
    """

    template_fields: Sequence[str] = tuple(sorted(TriggerDagRunOperator.template_fields))

    def __init__(self, *, decide_task_id: str = "decide", **kwargs: Any) -> None:
        kwargs.setdefault("skip_when_already_exists", True)
        # The train DAG validates its conf strictly: OpenLineage's parent keys would be refused.
        kwargs.setdefault("openlineage_inject_parent_info", False)
        super().__init__(**kwargs)
        self.decide_task_id = decide_task_id

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        decision = ti.xcom_pull(task_ids=self.decide_task_id, key="decision") or {}
        if "train_conf" not in decision:
            raise AirflowFailException(
                f"{ti.dag_id}: task {self.decide_task_id} left no train_conf in its 'decision' XCom "
                f"({decision!r}); it decides whether and how {self.trigger_dag_id} runs"
            )
        self.conf = {**(self.conf or {}), **decision["train_conf"]}
        if not self.trigger_run_id:
            self.trigger_run_id = f"retrain__{ti.run_id}"
        self.log.info("Starting %s (run %s) with conf %s", self.trigger_dag_id, self.trigger_run_id, self.conf)
        return super().execute(context)
