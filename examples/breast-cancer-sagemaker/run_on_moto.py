"""
Run the breast-cancer example end to end on the SageMaker backend, against moto on 127.0.0.1.

    .venv/bin/python examples/breast-cancer-sagemaker/run_on_moto.py [--workdir /tmp/mlops-sagemaker-demo]

What is real: Airflow 3 (``dag.test()`` of the DAGs the factory builds from this folder's
mlops.yaml), the provider's operators, backends and hooks, the amazon provider's SageMakerHook,
an Airflow AWS connection, and every boto3 request, sent to a moto server on loopback.

What is simulated, because moto runs no containers: this script plays SageMaker's container
runtime. When moto records a training job, the example's ``train.py`` runs here with the
training-toolkit environment (its channels downloaded from moto's S3), and its model is uploaded
as ``model.tar.gz`` where SageMaker would put it; the metric lines it prints become the job's
FinalMetricDataList. When moto records a processing job, ``evaluate.py`` runs the same way and
its ``evaluation.json`` is uploaded to the job's output. moto's InvokeEndpoint answers with a
static body. moto's tag lookup is patched to resolve model-package ARNs. The first deploy is a
CreateEndpoint; UpdateEndpoint, which moto lacks, is covered by tests/sagemaker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CODE = REPO / "examples" / "breast-cancer"
ACCOUNT, REGION = "123456789012", "us-east-1"
DATA_BUCKET, ARTIFACTS_BUCKET = f"mlops-data-{ACCOUNT}", f"mlops-artifacts-{ACCOUNT}"
GROUP, ENDPOINT = "demo--breast-cancer-sagemaker", "demo--breast-cancer-sagemaker"


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _s3(url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name=REGION)


def _download(s3: Any, uri: str, dest: Path) -> None:
    bucket, _, prefix = uri[5:].partition("/")
    for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        relative = item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, item["Key"], str(target))


def _run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, cwd=CODE, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed: {result.stderr[-2000:]}")
    return result.stdout


def simulate_containers(url: str) -> None:
    """Make moto's SageMaker run the example's scripts, as SageMaker's containers would."""
    from moto.sagemaker.models import SageMakerModelBackend

    create_training_job = SageMakerModelBackend.create_training_job
    create_processing_job = SageMakerModelBackend.create_processing_job
    lookup = SageMakerModelBackend._get_resource_from_arn

    def training(self: Any, **kwargs: Any) -> Any:
        # Read before moto replaces them with its own canned definition.
        definitions = list(kwargs["algorithm_specification"].get("MetricDefinitions", []))
        job = create_training_job(self, **kwargs)
        s3 = _s3(url)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            env = {"SM_MODEL_DIR": str(root / "model"), "SM_OUTPUT_DATA_DIR": str(root / "output")}
            for channel in kwargs["input_data_config"]:
                name = channel["ChannelName"]
                _download(s3, channel["DataSource"]["S3DataSource"]["S3Uri"], root / "input" / name)
                env[f"SM_CHANNEL_{name.upper()}"] = str(root / "input" / name)
            args = [part for k, v in (kwargs["hyper_parameters"] or {}).items() for part in (f"--{k}", str(v))]
            log = _run([sys.executable, "train.py", *args], env)
            with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
                for file in (root / "model").iterdir():
                    tar.add(file, arcname=file.name)
            bucket, _, key = job.model_artifacts["S3ModelArtifacts"][5:].partition("/")
            s3.upload_file(str(root / "model.tar.gz"), bucket, key)
        job.final_metric_data_list = [
            {"MetricName": d["Name"], "Value": float(m[-1]), "Timestamp": job.creation_time}
            for d in definitions if (m := re.findall(d["Regex"], log))
        ]
        return job

    def processing(self: Any, **kwargs: Any) -> Any:
        job = create_processing_job(self, **kwargs)
        s3 = _s3(url)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            env = {"SM_OUTPUT_DATA_DIR": str(root / "output")}
            for item in kwargs["processing_inputs"]:
                target = root / "input" / item["InputName"]
                _download(s3, item["S3Input"]["S3Uri"], target)
                for archive in target.glob("*.tar.gz"):
                    with tarfile.open(archive) as tar:
                        tar.extractall(target, filter="data")
                env[f"SM_CHANNEL_{item['InputName'].upper()}"] = str(target)
            _run([sys.executable, "evaluate.py"], env)
            output = kwargs["processing_output_config"]["Outputs"][0]["S3Output"]["S3Uri"].rstrip("/")
            bucket, _, prefix = output[5:].partition("/")
            s3.upload_file(str(root / "output" / "evaluation.json"), bucket, f"{prefix}/evaluation.json")
        return job

    def resource_from_arn(self: Any, arn: str) -> Any:  # moto cannot parse model-package ARNs
        if ":model-package/" in arn:
            package = next(p for p in self.model_packages.values() if p.arn == arn)
            package.tags = package.tags or []
            return package
        return lookup(self, arn)

    SageMakerModelBackend.create_training_job = training  # type: ignore[method-assign]
    SageMakerModelBackend.create_processing_job = processing  # type: ignore[method-assign]
    SageMakerModelBackend._get_resource_from_arn = resource_from_arn  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mlops-sagemaker-demo")
    workdir = parser.parse_args(argv).workdir.resolve()
    started = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "airflow").mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    os.environ.update({
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir / 'airflow' / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("MLOPS_DEMO_LOG_LEVEL", "WARNING"),
        "MLOPS_CONFIG_PATH": str(HERE),
        "MLOPS_HOME": str(workdir / "mlops"),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "extra": {"endpoint_url": url, "region_name": REGION}}),
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
    })
    _say("Creating Airflow's metadata DB (SQLite)")
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True, capture_output=True)

    from moto.server import ThreadedMotoServer

    _say(f"Starting moto (SageMaker, S3) on {url}; the Airflow connection aws_default points at it")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        simulate_containers(url)
        s3 = _s3(url)
        for bucket in (DATA_BUCKET, ARTIFACTS_BUCKET):
            s3.create_bucket(Bucket=bucket)
        for channel in ("train", "test"):
            s3.upload_file(str(CODE / "data" / channel / f"{channel}.csv"), DATA_BUCKET, f"breast-cancer/{channel}/{channel}.csv")
        return _run_dags(url, started)
    finally:
        server.stop()


def _run_dags(url: str, started: float) -> int:
    import boto3
    from airflow.dag_processing.dagbag import DagBag

    from airflow_provider_mlops import runtime
    from airflow_provider_mlops.gate import gate_table_markdown

    bag = DagBag(str(REPO / "dags"))
    if bag.import_errors:
        print(f"error: DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    train = bag.get_dag("mlops__demo__breast-cancer-sagemaker__train")
    deploy = bag.get_dag("mlops__demo__breast-cancer-sagemaker__deploy")
    registry = runtime.registry_for(runtime.config_at(str(HERE / "mlops.yaml")))
    sm = boto3.client("sagemaker", endpoint_url=url, region_name=REGION)

    def run(dag: Any, conf: dict[str, Any]) -> None:
        state = str(dag.test(run_conf=conf).state)
        if "success" not in state:
            raise SystemExit(f"DAG {dag.dag_id} ended {state}; logs under {os.environ['AIRFLOW_HOME']}/logs")

    _say(f"{train.dag_id}: SageMaker training job -> processing job (evaluate) -> gate -> Model Registry")
    run(train, {"requested_by": "run_on_moto", "commit": "0123abcd"})
    first = registry.latest(GROUP)
    assert first is not None
    job = sm.list_training_jobs()["TrainingJobSummaries"][0]["TrainingJobName"]
    metrics = sm.describe_training_job(TrainingJobName=job)["FinalMetricDataList"]
    shown = ", ".join(f"{m['MetricName']}={m['Value']:.4f}" for m in metrics)
    print(f"    training job {job}: {shown}")
    print(f"    model package {first.arn}: {first.semver} ({first.status})")
    print("\n".join(f"    {line}" for line in gate_table_markdown(first.gate).splitlines()))

    _say(f"{deploy.dag_id}: resolve -> approve (approval: auto) -> deploy endpoint -> smoke test -> promote")
    run(deploy, {"version": first.semver, "requested_by": "run_on_moto"})
    endpoint = sm.describe_endpoint(EndpointName=ENDPOINT)
    deployed = registry.get(GROUP, first.semver)
    print(f"    endpoint {ENDPOINT}: {endpoint['EndpointStatus']} on {endpoint['EndpointConfigName']}")
    print(f"    {first.semver}: {deployed.status} by {deployed.approval.get('by')}, stage {deployed.stage}")

    _say("Second training (C=0.05), gated against production " + first.semver)
    run(train, {"requested_by": "run_on_moto", "hyperparameters": {"C": 0.05}})
    second = registry.latest(GROUP)
    assert second is not None
    print(f"    registered {second.semver} ({second.status})")
    print("\n".join(f"    {line}" for line in gate_table_markdown(second.gate).splitlines()))
    summary = {"first": first.semver, "second": second.semver, "second_status": second.status,
               "endpoint": endpoint["EndpointStatus"], "seconds": round(time.monotonic() - started, 1)}
    _say(f"Done: {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
