"""
The container contract, proven without a cluster: the example's entrypoints run in a subprocess
with the command and environment the rendered pod gives its ``base`` container (paths under
/opt/ml, the volume mounts and /airflow/xcom remapped into a temp dir), and the XCom return
file the sidecar would serve is read back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from k8s_helpers import EVAL_JOB, EXAMPLES, TRAIN_JOB, as_sent, evaluation_spec, training_spec

from airflow_provider_mlops.backends.base import JobSpec
from airflow_provider_mlops.backends.kubernetes_pod import artifact_locations, render_pod
from airflow_provider_mlops.config.loader import LoadedConfig

CODE = EXAMPLES / "breast-cancer"  # the image's WORKDIR: source_dir of the GPU example


class PodSandbox:
    """A temp dir standing in for the pod's filesystem: every mount path is remapped under it."""

    def __init__(self, root: Path, pod: dict[str, Any]) -> None:
        self.root = root
        self.pod = pod
        self.base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")

    def path(self, pod_path: str) -> Path:
        return self.root / pod_path.lstrip("/")

    def remap(self, value: str) -> str:
        for prefix in ("/opt/ml", "/airflow/xcom", "/mnt/mlops-artifacts"):
            value = value.replace(prefix, str(self.path(prefix)))
        return value

    def env(self) -> dict[str, str]:
        # *_URI values are what the backend reports (worker paths, S3), not paths in the pod.
        env = {
            e["name"]: e["value"] if e["name"].endswith("_URI") else self.remap(e["value"])
            for e in self.base["env"] if "value" in e
        }
        return {**env, "PATH": os.environ["PATH"], "HOME": str(self.root)}

    def command(self) -> list[str]:
        command = list(self.base["command"]) + list(self.base.get("args") or [])
        assert command[0] == "python"
        return [sys.executable, *command[1:]]

    def mount(self, pod_path: str, source: Path) -> None:
        """What a volume mount does: the source's files appear at the pod path."""
        shutil.copytree(source, self.path(pod_path), dirs_exist_ok=True)

    def run(self, cwd: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        result = subprocess.run(self.command(), cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=120)
        xcom = json.loads(self.path("/airflow/xcom/return.json").read_text())
        return result, xcom


def test_training_then_evaluation_pods_follow_the_container_contract(
    tmp_path: Path, gpu_example: LoadedConfig, gpu_settings: dict[str, Any]
) -> None:
    cfg = gpu_example.config
    train_spec = training_spec(gpu_example, cfg)
    train = PodSandbox(tmp_path / "train-pod", as_sent(render_pod(train_spec, gpu_settings["training"])))
    train.mount("/opt/ml/input/data/train", CODE / "data" / "train")  # pvc://mlops-data/breast-cancer/train
    result, xcom = train.run(cwd=CODE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "train_accuracy=" in result.stdout  # the log is echoed, for `kubectl logs`
    assert xcom["exit_code"] == 0
    assert set(xcom["metrics"]) == {"train_accuracy", "train_log_loss"} and xcom["metrics"]["train_accuracy"] > 0.9
    model_uri = artifact_locations(TRAIN_JOB, gpu_settings["training"])["model_uri"]
    assert xcom["model_uri"] == model_uri == f"/mnt/efs/mlops-artifacts/{TRAIN_JOB}/model"
    hyperparameters = json.loads(train.path("/opt/ml/input/config/hyperparameters.json").read_text())
    assert hyperparameters == {"C": "1.0", "max_iter": "500"}
    published = train.path(f"/mnt/mlops-artifacts/{TRAIN_JOB}")
    with tarfile.open(published / "model.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["features.json", "model.joblib"]
    assert (published / "model" / "model.joblib").is_file()

    evaluate = PodSandbox(
        tmp_path / "eval-pod", as_sent(render_pod(evaluation_spec(gpu_example, cfg, model_uri), gpu_settings["evaluation"]))
    )
    evaluate.mount("/opt/ml/input/data/test", CODE / "data" / "test")
    evaluate.mount("/opt/ml/input/data/model", published / "model")  # pvc://mlops-artifacts/models/<job>/model
    result, xcom = evaluate.run(cwd=CODE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(cfg.evaluation.metrics) <= set(xcom["metrics"])
    assert xcom["details"]["evaluation"]["confusion_matrix"]["labels"] == ["malignant", "benign"]
    assert "model_uri" not in xcom
    assert xcom["output_uri"] == f"/mnt/efs/mlops-artifacts/{EVAL_JOB}/output"
    assert (evaluate.path(f"/mnt/mlops-artifacts/{EVAL_JOB}/output") / "evaluation.json").is_file()


def test_a_failing_entrypoint_reports_its_exit_code_and_reason(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import os, pathlib, sys\n"
        "pathlib.Path(os.environ['SM_OUTPUT_DIR'], 'failure').write_text('CUDA out of memory')\n"
        "sys.exit(3)\n"
    )
    spec = JobSpec(name=TRAIN_JOB, kind="training", entrypoint="train.py", image="img:1",
                   channels={"train": "pvc://data/train"}, resources={"gpus": 1})
    pod = PodSandbox(tmp_path / "pod", as_sent(render_pod(spec, {"artifacts_uri": "pvc://artifacts"})))
    result, xcom = pod.run(cwd=code)
    assert result.returncode == 3
    assert xcom["exit_code"] == 3
    assert xcom["failure_reason"] == "the entrypoint exited with code 3: CUDA out of memory"
    assert "model_uri" not in xcom
    assert not pod.path(f"/mnt/mlops-artifacts/{TRAIN_JOB}").exists()


def test_s3_channels_and_artifacts_go_through_s3_at_deterministic_uris(tmp_path: Path) -> None:
    """The s3:// path (SageMaker registry after Kubernetes training), against moto on loopback."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        aws = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
        }
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="ml-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        s3.upload_file(str(CODE / "data" / "train" / "train.csv"), "ml-bucket", "data/train/train.csv")
        spec = JobSpec(name=TRAIN_JOB, kind="training", entrypoint="train.py", image="img:1",
                       hyperparameters={"C": 0.5}, channels={"train": "s3://ml-bucket/data/train"},
                       metric_definitions=[{"name": "train_accuracy", "regex": "train_accuracy=([0-9.]+)"}])
        pod = PodSandbox(tmp_path / "pod", as_sent(render_pod(spec, {"artifacts_uri": "s3://ml-bucket/models"})))
        env = {**pod.env(), **aws}  # on EKS, IRSA gives boto3 its credentials instead
        result = subprocess.run(pod.command(), cwd=CODE, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        xcom = json.loads(pod.path("/airflow/xcom/return.json").read_text())
        assert xcom["model_uri"] == f"s3://ml-bucket/models/{TRAIN_JOB}/model.tar.gz"
        assert xcom["metrics"]["train_accuracy"] > 0.9
        archive = tmp_path / "model.tar.gz"
        s3.download_file("ml-bucket", f"models/{TRAIN_JOB}/model.tar.gz", str(archive))
        with tarfile.open(archive) as tar:
            assert "model.joblib" in tar.getnames()

        # Evaluation fetches the test data and unpacks model.tar.gz from the training URI.
        s3.upload_file(str(CODE / "data" / "test" / "test.csv"), "ml-bucket", "data/test/test.csv")
        evaluation = JobSpec(name=EVAL_JOB, kind="processing", entrypoint="evaluate.py", image="img:1",
                             channels={"test": "s3://ml-bucket/data/test", "model": xcom["model_uri"]})
        pod = PodSandbox(tmp_path / "eval-pod", as_sent(render_pod(evaluation, {"artifacts_uri": "s3://ml-bucket/models"})))
        result = subprocess.run(pod.command(), cwd=CODE, env={**pod.env(), **aws}, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        xcom = json.loads(pod.path("/airflow/xcom/return.json").read_text())
        assert xcom["metrics"]["f1"] > 0.9 and xcom["output_uri"] == f"s3://ml-bucket/models/{EVAL_JOB}/output"
        s3.head_object(Bucket="ml-bucket", Key=f"models/{EVAL_JOB}/output/evaluation.json")
    finally:
        server.stop()
