"""
The retrain DAG's steps: decide whether to retrain, then start the train DAG from the last release.

The decision never trains a model that has no version (its first training comes from CI or a
person) and never starts a second train run while one is queued or running. Data freshness is
read from local channels (their files' mtimes) and ``s3://`` channels (the newest LastModified
under the prefix, through the amazon provider's ``S3Hook`` on the model's AWS connection); a
channel it cannot read is said in the decision's reason, or fails the task, never taken for
"no newer data".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_mlops import runtime
from airflow_provider_mlops.config.references import (
    FRESHNESS_SCHEMES,
    checks_data_freshness,
    data_scheme,
    unreadable_freshness,
)
from airflow_provider_mlops.exceptions import (
    BackendError,
    BackendNotAvailableError,
    ConfigError,
    MissingFileError,
)
from airflow_provider_mlops.naming import dag_id
from airflow_provider_mlops.operators.base import MlopsConfigMixin
from airflow_provider_mlops.registry.releases import Release, last_release

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_mlops.config.loader import LoadedConfig

NO_VERSION_REASON = "no version is registered yet: the first training comes from CI or a person"
#: The train run states that count as "a training is under way".
ACTIVE_RUN_STATES = ["queued", "running"]


@dataclass(frozen=True)
class ChannelFreshness:
    """
    When one training channel last changed: its newest file, or its newest object in S3.

    :param field: the channel's field, ``training.channels.<name>``.
    :param location: the channel as configured (a path, ``file://`` or ``s3://bucket/prefix``).
    :param newest: the modification time (LastModified in S3) of its newest file or object.
    :param count: how many files or objects it holds.
    :param etag: the newest S3 object's ETag (None for local files).
    """

    field: str
    location: str
    newest: datetime
    count: int
    etag: str | None = None

    def describe(self) -> str:
        return f"{self.location} newest {self.newest.isoformat()}"

    def record(self) -> dict[str, Any]:
        """The JSON form kept in the decision's XCom and event."""
        return {"field": self.field, "location": self.location, "newest": self.newest.isoformat(),
                "count": self.count, "etag": self.etag}


def _local_freshness(field: str, location: str, path: Path) -> ChannelFreshness | None:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    if not files:
        return None
    newest = max(file.stat().st_mtime for file in files)
    return ChannelFreshness(field, location, datetime.fromtimestamp(newest, UTC), len(files))


def _s3_freshness(field: str, location: str, s3: Any, conn_id: str | None) -> ChannelFreshness | None:
    """The newest object under the channel's prefix (the keys SageMaker's S3Prefix would read)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = location[len("s3://"):].partition("/")
    newest: dict[str, Any] | None = None
    count = 0
    try:
        for item in s3.iter_file_metadata(prefix=prefix, bucket_name=bucket):
            if item["Key"].endswith("/"):  # a console "folder" marker, not data
                continue
            count += 1
            if newest is None or item["LastModified"] > newest["LastModified"]:
                newest = item
    except (BotoCoreError, ClientError) as exc:
        raise BackendError(
            f"{field}: listing '{location}' through the AWS connection '{conn_id}' failed ({exc}); the retrain "
            "decision reads when the channel last changed from it. Fix: check the bucket and that the "
            "connection's role may s3:ListBucket on it"
        ) from exc
    if newest is None:
        return None
    return ChannelFreshness(field, location, newest["LastModified"].astimezone(UTC), count,
                            str(newest.get("ETag", "")).strip('"') or None)


def data_freshness(loaded: LoadedConfig, s3_hook: Callable[[], Any]) -> list[ChannelFreshness]:
    """
    When each training channel last changed.

    :param loaded: the model's config; relative paths resolve from its folder.
    :param s3_hook: makes the amazon provider's ``S3Hook`` on the model's AWS connection, called
        once and only when a channel is in S3.
    :raises MissingFileError: a channel that holds no file or object: its freshness is unknown,
        and a training would read nothing.
    :raises ConfigError: a channel whose scheme the decision cannot read (validation refuses it
        with ``retrain_on_new_data: true``; see :func:`~airflow_provider_mlops.config.references.checks_data_freshness`).
    """
    cfg = loaded.config
    s3: Any = None
    result = []
    for name, location in cfg.training.channels.items():
        field, scheme = f"training.channels.{name}", data_scheme(location)
        if scheme is None:
            path = Path(loaded.resolve(location.removeprefix("file://")))
            found = _local_freshness(field, location, path) if path.exists() else None
        elif scheme in FRESHNESS_SCHEMES:
            s3 = s3 if s3 is not None else s3_hook()
            found = _s3_freshness(field, location, s3, cfg.aws.conn_id)
        else:
            raise ConfigError(f"the retrain decision can only read when local paths and s3:// prefixes last changed, "
                              f"not {scheme}://", path=str(loaded.path), field=field, value=location,
                              fix="set schedule.retrain_on_new_data: false, or move the channel to s3:// or a local path")
        if found is None:
            where = "objects" if scheme else "files"
            raise MissingFileError(
                f"{loaded.path}: {field}: '{location}' holds no {where}, so the retrain decision cannot tell when it "
                "last changed, and a training would read nothing. Fix: upload the data, correct the channel, or set "
                "schedule.retrain_on_new_data: false"
            )
        result.append(found)
    return result


def retrain_decision(
    last_version_at: datetime | None,
    data_at: datetime | None,
    now: datetime,
    max_age_days: float | None,
    retrain_on_new_data: bool,
    active_train_runs: int = 0,
    data_detail: str = "",
) -> tuple[bool, str]:
    """
    Pure decision logic.

    :param last_version_at: when the newest version was registered; None when there is none.
    :param data_at: the newest modification time of the training data, when known.
    :param now: the time of the decision.
    :param max_age_days: retrain when the newest version is this old.
    :param retrain_on_new_data: retrain when the data is newer than the newest version.
    :param active_train_runs: the model's train runs now queued or running.
    :param data_detail: what was checked (each channel and its newest time), or why nothing was.
    :return: ``(retrain, why)``. Unknown data freshness is said as such, never as "no newer data".
    """
    if active_train_runs:
        return False, f"a train run is already queued or running ({active_train_runs}): one training at a time"
    if last_version_at is None:
        return False, NO_VERSION_REASON
    age_days = (now - last_version_at).total_seconds() / 86400
    if max_age_days is not None and age_days >= max_age_days:
        return True, f"the last version is {age_days:.1f} days old (max_model_age_days: {max_age_days:g})"
    detail = f": {data_detail}" if data_detail else ""
    if retrain_on_new_data and data_at is not None and data_at > last_version_at:
        return True, (f"the data changed at {data_at.isoformat()}, after the last version "
                      f"({last_version_at.isoformat()}){detail}")
    reason = f"the last version is {age_days:.1f} days old"
    if max_age_days is not None:
        reason += f" (< {max_age_days:g})"
    if not retrain_on_new_data:
        return False, f"{reason} and data freshness is not checked{detail}"
    if data_at is None:
        return False, f"{reason} and the data's freshness is unknown{detail}"
    return False, f"{reason} and no newer data (last version at {last_version_at.isoformat()}){detail}"


class MlopsRetrainDecisionOperator(MlopsConfigMixin, BaseBranchOperator):
    """
    Decide whether to retrain, from the registry's last version time and the data's freshness.

    No version registered, or a train run already queued or running, means no retrain. Otherwise
    the version's age (``max_model_age_days``) and, when
    :func:`~airflow_provider_mlops.config.references.checks_data_freshness`, the newest file or
    S3 object of each training channel decide; each channel's newest time is in the reason and
    in the decision's ``data``. An empty channel or a failed S3 listing fails the task. When it
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
        checks = checks_data_freshness(cfg)
        data = data_freshness(self.loaded, self._s3_hook) if checks and latest is not None and not active else []
        retrain, why = retrain_decision(
            last_at, max((c.newest for c in data), default=None), datetime.now(UTC),
            cfg.schedule.max_model_age_days, checks, active, self._data_detail(data),
        )
        detail: dict[str, Any] = {"retrain": retrain, "reason": why, "last_version": latest.semver if latest else None,
                                  "run_id": ti.run_id, "data": [c.record() for c in data]}
        if retrain:
            detail.update(self._train_conf(conf))
        record = getattr(self.registry, "record_event", None)
        if record is not None:
            record(self.group, "retrain_decision", detail)
        ti.xcom_push(key="decision", value=detail)
        self.log.info("Retrain %s: %s", "yes" if retrain else "no", why)
        return self.trigger_task_id if retrain else self.skip_task_id

    def _data_detail(self, data: list[ChannelFreshness]) -> str:
        """What the decision read about the data, or why it read nothing."""
        if data:
            return "; ".join(c.describe() for c in data)
        if self.loaded.config.schedule.retrain_on_new_data is False:
            return "schedule.retrain_on_new_data is false"
        if unreadable := unreadable_freshness(self.loaded.config):
            self.log.warning("Data freshness is not checked: %s cannot be read (only local paths and s3://)", unreadable)
            channels = ", ".join(f"{field} is '{location}'" for field, location in unreadable.items())
            return (f"{channels}, and only local paths and s3:// prefixes can be checked "
                    "(schedule.retrain_on_new_data is unset; max_model_age_days decides)")
        return ""

    def _s3_hook(self) -> Any:
        """The amazon provider's S3Hook on the model's AWS connection (imported here, never at parse time)."""
        try:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise BackendNotAvailableError(
                f"{self.config_path}: training.channels: the retrain decision reads s3:// channels through the amazon "
                f"provider ({exc}); install it with pip install 'airflow-provider-mlops[aws]'"
            ) from exc
        aws = self.loaded.config.aws
        return S3Hook(aws_conn_id=aws.conn_id, region_name=aws.region)

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
