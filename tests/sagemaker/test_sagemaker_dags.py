"""
The example model on the SageMaker backend, run by real Airflow (``dag.test()``) against moto.

moto runs no containers: its training jobs complete on creation, and the evaluation container's
``evaluation.json`` is written to the processing job's S3 output by the
``container_writes_evaluation`` fixture, as the container would have. Faults (a job held
InProgress, a denied call) are injected by changing moto's in-process state.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sagemaker_testenv import EXAMPLE, Aws

from airflow_provider_mlops import runtime
from airflow_provider_mlops.backends.base import COMPLETED, FAILED, STOPPED, JobState
from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.exceptions import BackendError
from airflow_provider_mlops.factory.plan import plan_model
from airflow_provider_mlops.factory.render import render_dag
from airflow_provider_mlops.registry.base import APPROVED, PENDING

GROUP = "demo--breast-cancer-sagemaker"
ENDPOINT = "demo--breast-cancer-sagemaker"


def _state(dag_run: Any) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def _fast_config(tmp_path: Path) -> Path:
    """The example config, polling every 0.1 s, with its relative paths made absolute."""
    text = EXAMPLE.read_text().replace("../breast-cancer", str(EXAMPLE.parent.parent / "breast-cancer"))
    text = text.replace("  conn_id: aws_default\n", "  conn_id: aws_default\n  poll_interval_seconds: 0.1\n")
    path = tmp_path / "mlops.yaml"
    path.write_text(text)
    return path


def _serialize(dag: Any) -> None:
    """Write an ad-hoc test DAG to the metadata DB, as the dag processor would (dag.test needs it)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db("dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session)


def _xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key).one_or_none()
        return None if row is None else row.value


def test_example_trains_evaluates_registers_approves_and_deploys(
    aws: Aws, container_writes_evaluation: dict[str, Any], airflow_db: Path
) -> None:
    loaded = load_config(EXAMPLE)
    dags = {spec.kind: render_dag(spec) for spec in plan_model(loaded)}
    train = dags["train"].test(run_conf={"requested_by": "pytest", "commit": "0123abcd"})
    assert _state(train) == "success"
    sm = aws.client("sagemaker")
    assert len(sm.list_training_jobs()["TrainingJobSummaries"]) == 1
    assert len(sm.list_processing_jobs()["ProcessingJobSummaries"]) == 1
    registry = runtime.registry_for(loaded)
    version = registry.latest(GROUP)
    assert version is not None and (version.semver, version.status) == ("1.0.0", PENDING)
    assert version.metrics["f1"] == 0.97 and version.gate["passed"] is True and version.gate["first_model"] is True
    assert version.lineage["commit"] == "0123abcd"
    package = sm.describe_model_package(ModelPackageName=version.arn)
    assert package["InferenceSpecification"]["SupportedContentTypes"] == ["application/json", "text/csv"]
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("/evaluation.json")

    # Every XCom value is JSON, and the extra links were stored for the UI.
    for task_id in ("train", "evaluate", "gate", "register"):
        json.dumps(_xcom(train, task_id))
    assert "#/jobs/" in str(_xcom(train, "train", "_link_MlopsConsoleLink"))
    assert "cloudwatch" in str(_xcom(train, "evaluate", "_link_MlopsLogsLink"))
    assert "model-package-groups" in str(_xcom(train, "register", "_link_MlopsConsoleLink"))

    deploy = dags["deploy"].test(run_conf={"model_version": "1.0.0", "requested_by": "pytest"})
    assert _state(deploy) == "success"
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    deployed = _xcom(deploy, "deploy")
    assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == deployed["endpoint_config"]
    assert "#/endpoints/" in str(_xcom(deploy, "deploy", "_link_MlopsConsoleLink"))
    for task_id in ("resolve_version", "approve", "deploy", "smoke_test", "promote"):
        json.dumps(_xcom(deploy, task_id))
    final = registry.get(GROUP, "1.0.0")
    assert (final.status, final.approval["by"], final.stage) == (APPROVED, "auto", "production")

    # A second training is gated against the model now in production.
    second = dags["train"].test(run_conf={"requested_by": "pytest", "hyperparameters": {"C": 0.5}})
    assert _state(second) == "success"
    candidate = registry.latest(GROUP)
    assert candidate is not None and candidate.semver == "1.0.1"
    assert candidate.gate["champion_version"] == "1.0.0"


def test_a_retried_train_task_reattaches_to_its_job(aws: Aws, airflow_db: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Try 1 creates the job, then a describe is denied and the try fails; try 2 re-attaches."""
    from airflow.sdk import DAG
    from moto.core.exceptions import JsonRESTError
    from moto.sagemaker.models import SageMakerModelBackend

    from airflow_provider_mlops.operators import MlopsTrainOperator

    created: list[str] = []
    denied: list[str] = []
    original_create = SageMakerModelBackend.create_training_job
    original_describe = SageMakerModelBackend.describe_training_job

    def create_training_job(self: Any, **kwargs: Any) -> Any:
        created.append(kwargs["training_job_name"])
        return original_create(self, **kwargs)

    def describe_training_job(self: Any, training_job_name: str) -> Any:
        if training_job_name in self.training_jobs and not denied:
            denied.append(training_job_name)
            raise JsonRESTError("AccessDeniedException", "injected: not authorized to perform sagemaker:DescribeTrainingJob")
        return original_describe(self, training_job_name)

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_training_job)
    monkeypatch.setattr(SageMakerModelBackend, "describe_training_job", describe_training_job)
    with DAG("mlops__demo__breast-cancer-sagemaker__retry", schedule=None, auto_register=False) as dag:
        MlopsTrainOperator(task_id="train", config_path=str(_fast_config(tmp_path)), retries=1, retry_delay=timedelta(0))
    _serialize(dag)
    run = dag.test(run_conf={"requested_by": "pytest"})
    assert _state(run) == "success"
    assert len(created) == 1 and denied == created
    assert list(aws.sagemaker_state.training_jobs) == created
    ti = run.get_task_instance("train")
    assert ti.try_number == 2


def test_train_defers_while_the_job_runs_and_resumes_when_it_completes(aws: Aws, airflow_db: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG
    from moto.sagemaker.models import SageMakerModelBackend

    from airflow_provider_mlops.operators import MlopsTrainOperator

    original_create = SageMakerModelBackend.create_training_job

    def create_training_job(self: Any, **kwargs: Any) -> Any:
        job = original_create(self, **kwargs)
        job.training_job_status, job.secondary_status = "InProgress", "Starting"

        def complete() -> None:
            time.sleep(1.0)
            job.secondary_status = "Training"
            time.sleep(0.5)
            job.training_job_status = job.secondary_status = "Completed"

        threading.Thread(target=complete, daemon=True).start()
        return job

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", create_training_job)
    # Record what the trigger sends (a pass-through spy: the trigger itself runs unchanged).
    from airflow_provider_mlops.triggers.job import JobCompletionTrigger

    events: list[dict[str, Any]] = []
    original_run = JobCompletionTrigger.run

    async def run(self: JobCompletionTrigger) -> Any:
        async for event in original_run(self):
            events.append(event.payload)
            yield event

    monkeypatch.setattr(JobCompletionTrigger, "run", run)
    with DAG("mlops__demo__breast-cancer-sagemaker__defer", schedule=None, auto_register=False) as dag:
        MlopsTrainOperator(task_id="train", config_path=str(_fast_config(tmp_path)))
    _serialize(dag)
    run = dag.test(run_conf={"requested_by": "pytest"})
    assert _state(run) == "success"
    result = _xcom(run, "train")
    assert result["model_uri"].endswith("/output/model.tar.gz")
    assert [e["status"] for e in events] == ["success"]  # the trigger, not the worker, saw it complete
    assert len(aws.sagemaker_state.training_jobs) == 1


# -- execute_complete, branch by branch ------------------------------------------------------


class _Ti:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def _train_operator(tmp_path: Path) -> Any:
    from airflow_provider_mlops.operators import MlopsTrainOperator

    return MlopsTrainOperator(task_id="train", config_path=str(_fast_config(tmp_path)))


def _event(status: str, job_status: str, reason: str | None = None) -> dict[str, Any]:
    state = JobState(name="demo-job", status=job_status, failure_reason=reason, model_uri="s3://b/m.tar.gz",
                     details={"links": {"console": "https://console/x", "logs": "https://logs/x"}})
    return {"status": status, "state": state.to_dict()}


def test_execute_complete_success_returns_the_result_and_pushes_links(tmp_path: Path, moto_server: str) -> None:
    operator = _train_operator(tmp_path)
    ti = _Ti()
    context = {"ti": ti, "dag_run": SimpleNamespace(conf={"requested_by": "pytest"})}
    result = operator.execute_complete(context, _event("success", COMPLETED))
    assert result["model_uri"] == "s3://b/m.tar.gz" and result["requested_by"] == "pytest"
    assert ti.pushed["mlops_links"]["console"] == "https://console/x"
    json.dumps(result)


@pytest.mark.parametrize(("event", "message"), [
    (_event("failed", FAILED, "AlgorithmError: boom"), "failed: AlgorithmError: boom"),
    (_event("stopped", STOPPED, "stopped by a person"), "was stopped .*never counts as success"),
    ({"status": "error", "job_name": "demo-job", "message": "polling failed 5 times"}, "waiting for job demo-job failed"),
    ({"status": "surprise"}, "unexpected trigger event"),
])
def test_execute_complete_failure_branches(tmp_path: Path, moto_server: str, event: dict[str, Any], message: str) -> None:
    operator = _train_operator(tmp_path)
    with pytest.raises(BackendError, match=message):
        operator.execute_complete({"ti": _Ti(), "dag_run": SimpleNamespace(conf={})}, event)


def test_on_kill_stops_the_running_job(aws: Aws, tmp_path: Path, container_writes_evaluation: dict[str, Any]) -> None:
    """StopProcessingJob runs against moto (StopTrainingJob, which moto lacks, is covered with Stubber)."""
    from airflow_provider_mlops.backends.base import JobSpec
    from airflow_provider_mlops.operators import MlopsEvaluateOperator

    operator = MlopsEvaluateOperator(task_id="evaluate", config_path=str(_fast_config(tmp_path)))
    loaded = operator.loaded
    spec = JobSpec(name="demo-bc-evaluate-kill", kind="processing", entrypoint="evaluate.py", image=loaded.config.image,
                   channels={"test": str(loaded.config.evaluation.data)})
    operator.backend.submit(spec)
    aws.sagemaker_state.processing_jobs["demo-bc-evaluate-kill"].processing_job_status = "InProgress"
    operator.job_name = "demo-bc-evaluate-kill"
    operator.on_kill()
    assert aws.sagemaker_state.processing_jobs["demo-bc-evaluate-kill"].processing_job_status == "Stopped"


def test_retrain_decision_reads_the_last_version_time_from_the_registry(aws: Aws, container_writes_evaluation: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from airflow_provider_mlops.operators.retrain import retrain_decision

    loaded = load_config(EXAMPLE)
    registry = runtime.registry_for(loaded)
    assert registry.latest(GROUP) is None
    from test_sagemaker_registry import register

    register(registry, "run-1")
    latest = registry.latest(GROUP)
    assert latest is not None
    retrain, why = retrain_decision(datetime.fromisoformat(latest.created_at), None, datetime.now(UTC), 30, False)
    assert retrain is False and "days old" in why
    retrain, _ = retrain_decision(datetime.fromisoformat(latest.created_at), None,
                                  datetime.fromisoformat(latest.created_at) + timedelta(days=31), 30, False)
    assert retrain is True


def test_parsing_the_sagemaker_example_imports_no_boto3() -> None:
    """The DAG loader builds the sagemaker example's DAGs without importing boto3 or the amazon provider's aws package."""
    import subprocess
    import sys

    code = (
        "import sys; from airflow_provider_mlops.config.loader import load_config;"
        "from airflow_provider_mlops.factory.plan import plan_model; from airflow_provider_mlops.factory.render import render_dag;"
        f"[render_dag(s) for s in plan_model(load_config({str(EXAMPLE)!r}))];"
        "bad = [m for m in ('boto3', 'botocore', 'airflow.providers.amazon.aws') if m in sys.modules]; assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_deploying_a_newer_version_updates_the_endpoint_blue_green(
    aws: Aws, container_writes_evaluation: dict[str, Any], moto_update_endpoint: dict[str, Any], airflow_db: Path
) -> None:
    """Train and deploy twice: the second deploy is an UpdateEndpoint (moto given one by the fixture)."""
    loaded = load_config(EXAMPLE)
    dags = {spec.kind: render_dag(spec) for spec in plan_model(loaded)}
    for semver in ("1.0.0", "1.0.1"):
        assert _state(dags["train"].test(run_conf={"requested_by": "pytest"})) == "success"
        deploy = dags["deploy"].test(run_conf={"model_version": semver, "requested_by": "pytest"})
        assert _state(deploy) == "success"
    deployed = _xcom(deploy, "deploy")
    assert (deployed["action"], deployed["version"], deployed["previous_version"]) == ("update", "1.0.1", "1.0.0")
    [request] = moto_update_endpoint["requests"]
    routing = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert (routing["Type"], routing["CanarySize"]["Value"], routing["WaitIntervalInSeconds"]) == ("CANARY", 10, 300)
    assert request["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "demo-breast-cancer-sm-5xx"}]
    sm = aws.client("sagemaker")
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == deployed["endpoint_config"]
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 2  # keep_previous: 2 keeps the old one
    registry = runtime.registry_for(loaded)
    assert registry.production(GROUP).semver == "1.0.1"  # type: ignore[union-attr]
    assert registry.get(GROUP, "1.0.0").stage == "archived"

    # Rollback: the deploy DAG with the previous approved version puts it back, blue/green again.
    rollback = dags["deploy"].test(run_conf={"model_version": "1.0.0", "requested_by": "pytest"})
    assert _state(rollback) == "success"
    rolled = _xcom(rollback, "deploy")
    assert (rolled["action"], rolled["version"], rolled["previous_version"]) == ("update", "1.0.0", "1.0.1")
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == rolled["endpoint_config"]
    assert registry.production(GROUP).semver == "1.0.0"  # type: ignore[union-attr]


def test_a_rolled_back_update_fails_and_the_old_config_keeps_serving(
    aws: Aws, moto_update_endpoint: dict[str, Any]
) -> None:
    from test_sagemaker_registry import register, registry
    from test_sagemaker_serving import serving

    loaded = load_config(EXAMPLE)
    reg = registry()
    first = reg.set_approval(GROUP, register(reg, "run-1").semver, APPROVED, by="auto")
    second = reg.set_approval(GROUP, register(reg, "run-2").semver, APPROVED, by="auto")
    created = serving().deploy(ENDPOINT, first, loaded)
    moto_update_endpoint["fail_with"] = "CloudWatch alarm demo-breast-cancer-sm-5xx went into ALARM; rolled back"
    with pytest.raises(Exception, match="went into ALARM; rolled back; it still serves") as raised:
        serving().deploy(ENDPOINT, second, loaded)
    assert type(raised.value).__name__ == "DeploymentError"
    endpoint = aws.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", created["endpoint_config"])
    # Retrying the same deploy reuses its endpoint config instead of creating a third one.
    with pytest.raises(Exception, match="did not switch|still serves"):
        moto_update_endpoint["fail_with"] = "still failing"
        serving().deploy(ENDPOINT, second, loaded)
    assert len(aws.client("sagemaker").list_endpoint_configs()["EndpointConfigs"]) == 2
