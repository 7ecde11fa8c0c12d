"""
The example model's image, built for real and run as SageMaker runs it.

SageMaker lays out /opt/ml (input/data/<channel>, input/config, model, output) or, for processing
jobs, /opt/ml/processing/input/<channel> and /opt/ml/processing/output, then starts the image
with the job's entrypoint and environment: the tests take both from the SageMaker backend's own
CreateTrainingJob / CreateProcessingJob requests, and mount host folders where SageMaker puts its
volumes. Endpoints run `serve` with the model in /opt/ml/model, answering on port 8080.
"""

from __future__ import annotations

import csv
import json
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from container_testenv import EXAMPLE

from airflow_provider_mlops.backends.base import JobSpec
from airflow_provider_mlops.backends.sagemaker import SageMakerComputeBackend
from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.engine import ContainerEngine, Mount, Port

pytestmark = pytest.mark.timeout(1800)  # the session fixtures may build the base and the image

CONFIG = load_config(EXAMPLE / "mlops.yaml").config
SAGEMAKER = SageMakerComputeBackend(role_arn="arn:aws:iam::123456789012:role/mlops", artifacts_uri="s3://mlops-artifacts")
TEST_ROWS = list(csv.reader((EXAMPLE / "data" / "test" / "test.csv").open()))[1:]


def writable(path: Path) -> Path:
    """A folder the image's user (uid 1000) may write, as SageMaker's volumes are."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def training_request(image: str) -> dict[str, Any]:
    spec = JobSpec(
        name="breast-cancer-train-container",
        kind="training",
        entrypoint=CONFIG.training.entrypoint,
        image=image,
        hyperparameters=dict(CONFIG.training.hyperparameters),
        channels={name: f"s3://mlops-data/{name}" for name in CONFIG.training.channels},
    )
    return SAGEMAKER.training_request(spec)


def sagemaker_training_volumes(root: Path) -> list[Mount]:
    """/opt/ml/input (channels and hyperparameters.json), /opt/ml/model and /opt/ml/output."""
    request_hps = {k: str(v) for k, v in CONFIG.training.hyperparameters.items()}
    config = writable(root / "input" / "config")
    (config / "hyperparameters.json").write_text(json.dumps(request_hps))
    for channel, location in CONFIG.training.channels.items():
        data = writable(root / "input" / "data" / channel)
        for file in (EXAMPLE / location).iterdir():
            (data / file.name).write_bytes(file.read_bytes())
    return [
        Mount(root / "input", "/opt/ml/input"),
        Mount(writable(root / "model"), "/opt/ml/model"),
        Mount(writable(root / "output"), "/opt/ml/output"),
    ]


@pytest.fixture(scope="module")
def trained(engine: ContainerEngine, example_image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train`, the command SageMaker starts a training image with; the job's environment; /opt/ml mounted."""
    root = tmp_path_factory.mktemp("training")
    request = training_request(example_image)
    name = f"mlops-test-train-{root.name}"
    try:
        result = engine.run(
            example_image, ["train"], name=name, timeout=600, env=request["Environment"], mounts=sagemaker_training_volumes(root)
        )
    finally:
        engine.remove(name)
    assert result.exit_code == 0, result.logs
    assert "train_accuracy=" in result.logs  # the line the metric definitions match
    return root / "model"


def test_train_writes_the_model_under_opt_ml_model(trained: Path) -> None:
    assert (trained / "model.joblib").stat().st_size > 0
    assert json.loads((trained / "features.json").read_text()) == {"n_features": 30}


def test_the_sagemaker_backends_entrypoint_and_arguments_train_the_same_model(
    engine: ContainerEngine, example_image: str, tmp_path: Path, container_name
) -> None:
    request = training_request(example_image)
    spec = request["AlgorithmSpecification"]
    result = engine.run(
        example_image,
        spec.get("ContainerArguments", []),
        entrypoint=spec["ContainerEntrypoint"],
        name=container_name("train-entrypoint"),
        timeout=600,
        env=request["Environment"],
        mounts=sagemaker_training_volumes(tmp_path),
    )
    assert result.exit_code == 0, result.logs
    assert (tmp_path / "model" / "model.joblib").is_file()


def test_evaluation_writes_evaluation_json_as_a_processing_job(
    engine: ContainerEngine, example_image: str, trained: Path, tmp_path: Path, container_name
) -> None:
    channel = CONFIG.evaluation.channel
    spec = JobSpec(
        name="breast-cancer-evaluate-container",
        kind="processing",
        entrypoint=CONFIG.evaluation.entrypoint,
        image=example_image,
        channels={channel: f"s3://mlops-data/{channel}", "model": "s3://mlops-artifacts/training/model.tar.gz"},
    )
    request = SAGEMAKER.processing_request(spec)
    # SageMaker downloads each input to its LocalPath; the model channel holds training's model.tar.gz.
    inputs = {i["InputName"]: i["S3Input"]["LocalPath"] for i in request["ProcessingInputs"]}
    test_data = writable(tmp_path / "input" / channel)
    (test_data / "test.csv").write_bytes((EXAMPLE / "data" / channel / "test.csv").read_bytes())
    model_input = writable(tmp_path / "input" / "model")
    with tarfile.open(model_input / "model.tar.gz", "w:gz") as archive:
        for file in trained.iterdir():
            archive.add(file, arcname=file.name)
    output = writable(tmp_path / "output")
    [output_path] = [o["S3Output"]["LocalPath"] for o in request["ProcessingOutputConfig"]["Outputs"]]

    result = engine.run(
        example_image,
        entrypoint=request["AppSpecification"]["ContainerEntrypoint"],
        name=container_name("evaluate"),
        timeout=600,
        env=request["Environment"],
        mounts=[
            Mount(test_data, inputs[channel]),
            Mount(model_input, inputs["model"]),
            Mount(output, output_path),
        ],
    )
    assert result.exit_code == 0, result.logs
    report = json.loads((output / "evaluation.json").read_text())
    assert report["samples"] == len(TEST_ROWS)
    gate = CONFIG.evaluation.gate
    assert report["metrics"]["f1"] >= gate["f1"].min, report  # the example passes its own gate


def wait_for_ping(url: str, engine: ContainerEngine, name: str, attempts: int = 240) -> None:
    """Poll GET /ping (bounded); fail with the container's logs when it never answers 200."""
    for _ in range(attempts):
        state = engine.container(name)
        assert state is not None and state["State"]["Running"], engine.logs(name)
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url}/ping never answered 200:\n{engine.logs(name)}")


def invoke(url: str, rows: list[list[float]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps({"instances": rows}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_serve_answers_ping_and_invocations_with_the_models_predictions_and_stops_on_sigterm(
    engine: ContainerEngine, example_image: str, trained: Path, container_name
) -> None:
    rows = [[float(v) for v in row[1:]] for row in TEST_ROWS]
    labels = ["malignant", "benign"]
    truth = [labels[int(row[0])] for row in TEST_ROWS]
    # What the model predicts, computed in the image without the server: the server must agree.
    direct = engine.run(
        example_image,
        ["python", "-c", "import json, inference as i; m = i.model_fn('/opt/ml/model'); "
         "print(json.dumps(i.predict_fn(i.input_fn(open('/rows.json').read(), 'application/json'), m)))"],
        name=container_name("predict"),
        timeout=300,
        mounts=[Mount(trained, "/opt/ml/model", read_only=True), Mount(write_rows(trained.parent, rows), "/rows.json", True)],
    )
    assert direct.exit_code == 0, direct.logs
    expected = json.loads(direct.logs.strip().splitlines()[-1])

    name = container_name("serve")
    engine.start(example_image, ["serve"], name=name, ports=[Port(8080)], mounts=[Mount(trained, "/opt/ml/model", read_only=True)])
    url = f"http://127.0.0.1:{engine.host_port(name, 8080)}"
    wait_for_ping(url, engine, name)
    answer = invoke(url, rows)
    assert answer["predictions"] == expected["predictions"]
    assert answer["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    accuracy = sum(p == t for p, t in zip(answer["predictions"], truth, strict=True)) / len(truth)
    assert accuracy >= 0.9, accuracy  # the real model, not a stub

    # SIGTERM ends the server itself (exit 0); a server that ignored it would be killed after the
    # grace period and exit 137.
    assert engine.stop(name, grace=60) == 0, engine.logs(name)


def write_rows(folder: Path, rows: list[list[float]]) -> Path:
    path = folder / "rows.json"
    path.write_text(json.dumps({"instances": rows}))
    path.chmod(0o644)
    return path


def test_the_image_holds_the_model_server_and_never_airflow(
    engine: ContainerEngine, example_image: str, container_name
) -> None:
    server = engine.run(
        example_image, ["python", "-c", "import airflow_provider_mlops.serving.server"], name=container_name("server"), timeout=300
    )
    assert server.exit_code == 0, f"the image lacks what the model server imports:\n{server.logs}"
    airflow = engine.run(example_image, ["python", "-c", "import airflow"], name=container_name("airflow"), timeout=300)
    assert airflow.exit_code == 1 and "No module named 'airflow'" in airflow.logs, airflow.logs
