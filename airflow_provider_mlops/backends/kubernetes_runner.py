"""
The command a Kubernetes pod runs: ``python -m airflow_provider_mlops.backends.kubernetes_runner``.

It gives the model's entrypoint the SageMaker training-toolkit layout inside the pod, then
hands the results back the way Kubernetes pods can:

1. write ``hyperparameters.json`` and fetch ``s3://`` channels into ``/opt/ml/input/data/<name>``
   (``pvc://`` channels are already mounted there; a ``.tar.gz`` object is unpacked);
2. run the entrypoint with ``--key value`` hyperparameters, echoing its log;
3. publish ``/opt/ml/model`` as ``<artifacts>/<job>/model.tar.gz`` (and ``model/`` on a
   volume) and ``SM_OUTPUT_DATA_DIR`` as ``<artifacts>/<job>/output/``;
4. write metrics and artifact URIs to the XCom file (``/airflow/xcom/return.json``), which
   the XCom sidecar serves to the backend.

Standard library only (plus ``boto3`` for ``s3://``, imported when used): it runs in the model's
image, where the provider is installed with ``--no-deps``. Every location comes from the
environment the pod spec sets, so a test runs the same command with the paths remapped.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from airflow_provider_mlops.backends.base import parse_metrics

XCOM_FILE = "/airflow/xcom/return.json"


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _s3_client() -> Any:
    try:
        import boto3
    except ImportError:  # pragma: no cover - depends on the image
        sys.exit("kubernetes_runner: s3:// locations need boto3 in the image (pip install boto3)")
    return boto3.client("s3")


def fetch_channel(uri: str, dest: Path) -> None:
    """Copy one ``s3://`` channel into ``dest``; unpack it when it is a ``.tar.gz`` object."""
    dest.mkdir(parents=True, exist_ok=True)
    if not uri.startswith("s3://"):
        return  # pvc:// channels are mounted at dest by the pod spec
    client = _s3_client()
    bucket, key = _split_s3(uri)
    if key.endswith(".tar.gz"):
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "archive.tar.gz"
            client.download_file(bucket, key, str(archive))
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")
        return
    prefix = key.rstrip("/") + "/" if key else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix):]
            if relative and not relative.endswith("/"):
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(target))


def publish(source: Path, destination: str, *, archive: bool) -> None:
    """Copy ``source`` to ``destination`` (``s3://`` or a mounted folder); as a ``.tar.gz`` if asked."""
    if not source.is_dir():
        return
    files = sorted(p for p in source.rglob("*") if p.is_file())
    if destination.startswith("s3://"):
        client = _s3_client()
        bucket, key = _split_s3(destination)
        if archive:
            with tempfile.TemporaryDirectory() as tmp:
                tarball = Path(tmp) / "model.tar.gz"
                _tar(source, tarball)
                client.upload_file(str(tarball), bucket, key)
            return
        for path in files:
            client.upload_file(str(path), bucket, f"{key.rstrip('/')}/{path.relative_to(source)}")
        return
    target = Path(destination)
    target.parent.mkdir(parents=True, exist_ok=True)
    if archive:
        _tar(source, target)
        shutil.copytree(source, target.parent / "model", dirs_exist_ok=True)
    else:
        shutil.copytree(source, target, dirs_exist_ok=True)


def _tar(source: Path, tarball: Path) -> None:
    # SageMaker's layout: the model files at the archive's root.
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(source.iterdir()):
            tar.add(path, arcname=path.name)


def entrypoint_command(entrypoint: str, hyperparameters: dict[str, Any]) -> list[str]:
    """``train.py`` runs with this interpreter; anything else is a command line. Hyperparameters follow as flags."""
    parts = shlex.split(entrypoint)
    if parts and parts[0].endswith(".py"):
        parts = [sys.executable, *parts]
    for key, value in hyperparameters.items():
        parts += [f"--{key}", str(value)]
    return parts


def _numbers(data: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def collect(log_text: str, env: dict[str, str]) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics from the log (metric definitions), ``metrics.json`` and ``evaluation.json``, like the local backend."""
    metrics = parse_metrics(log_text, json.loads(env.get("MLOPS_METRIC_DEFINITIONS", "[]")))
    details: dict[str, Any] = {}
    output_dir, model_dir = Path(env["SM_OUTPUT_DATA_DIR"]), Path(env["SM_MODEL_DIR"])
    for candidate in (output_dir / "metrics.json", model_dir / "metrics.json"):
        if candidate.is_file():
            metrics.update(_numbers(json.loads(candidate.read_text())))
    evaluation = output_dir / "evaluation.json"
    if evaluation.is_file():
        details["evaluation"] = json.loads(evaluation.read_text())
        metrics.update(_numbers(details["evaluation"].get("metrics", {})))
    return metrics, details


def run(env: dict[str, str]) -> int:
    """Run the job the environment describes; return the entrypoint's exit code."""
    hyperparameters: dict[str, Any] = json.loads(env.get("SM_HPS", "{}"))
    channels: dict[str, str] = json.loads(env.get("MLOPS_CHANNELS", "{}"))
    config_dir = Path(env["SM_INPUT_CONFIG_DIR"])
    for folder in (config_dir, Path(env["SM_MODEL_DIR"]), Path(env["SM_OUTPUT_DATA_DIR"])):
        folder.mkdir(parents=True, exist_ok=True)
    (config_dir / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (config_dir / "inputdataconfig.json").write_text(json.dumps({n: {"TrainingInputMode": "File"} for n in channels}))
    for name, uri in channels.items():
        fetch_channel(uri, Path(env[f"SM_CHANNEL_{name.upper().replace('-', '_')}"]))

    command = entrypoint_command(env["MLOPS_ENTRYPOINT"], hyperparameters)
    print(f"kubernetes_runner: running {shlex.join(command)}", flush=True)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append(line)
    code = process.wait()
    sys.stdout.flush()

    log_text = "".join(lines)
    metrics, details = collect(log_text, env)
    result: dict[str, Any] = {"exit_code": code, "metrics": metrics, "details": details}
    if code == 0:
        try:
            if env.get("MLOPS_JOB_KIND") == "training" and env.get("MLOPS_MODEL_PUBLISH"):
                publish(Path(env["SM_MODEL_DIR"]), env["MLOPS_MODEL_PUBLISH"], archive=True)
                result["model_uri"] = env.get("MLOPS_MODEL_URI")
            if env.get("MLOPS_OUTPUT_PUBLISH"):
                publish(Path(env["SM_OUTPUT_DATA_DIR"]), env["MLOPS_OUTPUT_PUBLISH"], archive=False)
                result["output_uri"] = env.get("MLOPS_OUTPUT_URI")
        except Exception as exc:  # the job's result must still reach the XCom file
            code = result["exit_code"] = 1
            result["failure_reason"] = (
                f"the entrypoint succeeded but publishing its results failed: {exc!r}; check the pod's "
                "write access to kubernetes.artifacts_uri (IRSA role or volume permissions)"
            )
    else:
        failure = Path(env.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
        reason = failure.read_text().strip() if failure.is_file() else "".join(lines[-20:]).strip()
        result["failure_reason"] = f"the entrypoint exited with code {code}: {reason[-1000:]}"
    xcom_file = Path(env.get("MLOPS_XCOM_FILE", XCOM_FILE))
    xcom_file.parent.mkdir(parents=True, exist_ok=True)
    xcom_file.write_text(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(run(dict(os.environ)))
