"""Gate and register: decide whether the candidate may replace production, and record it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from airflow_provider_mlops.gate import evaluate_gate, gate_table_markdown
from airflow_provider_mlops.links.console import MlopsConsoleLink, push_links
from airflow_provider_mlops.operators.base import MlopsBaseOperator
from airflow_provider_mlops.registry.base import PENDING, REJECTED

if TYPE_CHECKING:
    from airflow.sdk import Context


class MlopsGateOperator(MlopsBaseOperator):
    """
    Compare the evaluated candidate with the gate rules and the production model.

    A failed gate does not fail the task: the decision travels to the register step, which
    records the version as Rejected with the full comparison table, so nothing is silently lost.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param evaluate_task_id: the task whose XCom holds the candidate's metrics.
    :return: ``{"passed", "champion_version", "first_model", "rows", "table_md"}``.
    """

    def __init__(self, *, evaluate_task_id: str = "evaluate", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.evaluate_task_id = evaluate_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        evaluated = context["ti"].xcom_pull(task_ids=self.evaluate_task_id)
        champion = self.registry.production(self.group)
        result = evaluate_gate(
            self.loaded.config.evaluation,
            evaluated["metrics"],
            champion.metrics if champion else None,
            champion.semver if champion else None,
        )
        result["table_md"] = gate_table_markdown(result)
        self.log.info("Gate %s\n%s", "passed" if result["passed"] else "FAILED", result["table_md"])
        return result


class MlopsRegisterOperator(MlopsBaseOperator):
    """
    Register the candidate under the next semantic version of its ``MAJOR.MINOR`` series.

    The patch number comes from the registry's atomic ordering. The registration is keyed by
    the DAG run, so a retried task returns the version its first try registered. A candidate
    that failed the gate is registered as ``Rejected`` (with the gate table), never skipped.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :return: the registered version's record (semver, status, metrics, gate, lineage).
    """

    operator_extra_links = (MlopsConsoleLink(),)

    def __init__(
        self,
        *,
        train_task_id: str = "train",
        evaluate_task_id: str = "evaluate",
        gate_task_id: str = "gate",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.train_task_id = train_task_id
        self.evaluate_task_id = evaluate_task_id
        self.gate_task_id = gate_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        trained = ti.xcom_pull(task_ids=self.train_task_id)
        evaluated = ti.xcom_pull(task_ids=self.evaluate_task_id)
        gate = ti.xcom_pull(task_ids=self.gate_task_id)
        loaded = self.loaded
        lineage = {
            "image": trained.get("image"),
            "image_version": trained.get("image_version"),
            "commit": trained.get("commit"),
            "repository": loaded.config.repository,
            "data": trained.get("channels"),
            "hyperparameters": trained.get("hyperparameters"),
            "training_job": trained.get("job_name"),
            "evaluation_job": evaluated.get("job_name"),
            "evaluation_report": evaluated.get("report_uri"),
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "config": str(loaded.path),
            "config_digest": loaded.digest,
            "requested_by": trained.get("requested_by"),
        }
        version = self.registry.register(
            self.group,
            loaded.config.version,
            idempotency_key=f"{ti.dag_id}/{ti.run_id}",
            artifact_uri=trained["model_uri"],
            metrics={**evaluated["metrics"], "confusion_matrix": evaluated.get("confusion_matrix")},
            gate={k: v for k, v in gate.items() if k != "table_md"},
            lineage=lineage,
            status=PENDING if gate["passed"] else REJECTED,
        )
        if version.status == REJECTED and not version.approval:
            version = self.registry.set_approval(
                self.group, version.semver, REJECTED, by="gate", reason="failed the evaluation gate"
            )
        self.log.info("Registered %s version %s (%s)", self.group, version.semver, version.status)
        push_links(context, {"console": version.lineage.get("console_url")})
        return version.to_dict()


def gate_failure_reason(record: dict[str, Any]) -> str:
    """
    Why a registered version failed its gate, in one line: each failed metric and rule.

    :param record: the register task's XCom (a version record with its ``gate``).
    :return: for example ``demo-x 1.0.1 failed the evaluation gate: f1 0.91 (delta >= -0.01)``.
    """
    failures = []
    for row in record.get("gate", {}).get("rows", []):
        if row.get("passed"):
            continue
        rules = ", ".join(str(c.get("rule")) for c in row.get("checks", []) if not c.get("passed"))
        candidate = row.get("candidate")
        value = f" {candidate:.4g}" if isinstance(candidate, (int, float)) else ""
        failures.append(f"{row.get('metric')}{value} ({rules or 'failed'})")
    what = "; ".join(failures) or "no rule recorded"
    return (
        f"{record.get('group')} {record.get('semver')} failed the evaluation gate: {what}. "
        f"It is registered as {record.get('status')} and won't be deployed"
    )


class MlopsGatePassedOperator(MlopsBaseOperator):
    """
    Show the gate's outcome in the Grid: ``success`` when the candidate passed, ``skipped`` when not.

    A leaf after the register step: the version is registered (Rejected, with its gate table)
    whatever the gate decided, and the notification still goes out; this task makes a failed
    gate visible at a glance, with the failed rules as the skip reason.

    :param config_path: the model's ``mlops.yaml``.
    :param config_root: the folder its layered defaults are searched up to.
    :param register_task_id: the task whose XCom holds the registered version.
    :return: ``{"passed", "semver"}`` when the gate passed.
    """

    ui_color = "#e8fde9"

    def __init__(self, *, register_task_id: str = "register", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.register_task_id = register_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        record = context["ti"].xcom_pull(task_ids=self.register_task_id) or {}
        if not record.get("gate", {}).get("passed"):
            reason = gate_failure_reason(record)
            self.log.warning("%s", reason)
            raise AirflowSkipException(reason)
        self.log.info("%s %s passed the evaluation gate", record.get("group"), record.get("semver"))
        return {"passed": True, "semver": record.get("semver")}
