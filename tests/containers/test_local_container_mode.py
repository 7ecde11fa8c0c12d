"""
The local backend's container mode (``local.runtime: container``), on the real engine and the example's image.

A train → evaluate → register → deploy pipeline runs under ``dag.test()`` with training, evaluation
and the model server in containers of the image; then the attempt rules: a running container is
re-attached, a retry after a failed container starts ``-a2``, ``stop`` ends the container, and
the endpoint swaps model-server containers and removes them on ``stop``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from container_testenv import EXAMPLE, REPO

from airflow_provider_mlops import runtime
from airflow_provider_mlops._proc import find_processes
from airflow_provider_mlops.backends import get_compute_backend
from airflow_provider_mlops.backends.base import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobSpec
from airflow_provider_mlops.backends.local_container import RUN_DIR_LABEL, LocalContainerBackend
from airflow_provider_mlops.engine import ContainerEngine
from airflow_provider_mlops.naming import dag_id
from airflow_provider_mlops.serving.containers import CONTAINERS_FILE, deploy_container
from airflow_provider_mlops.serving.local import LocalServing, invoke

pytestmark = pytest.mark.timeout(1800)  # the session fixtures may build the base and the image

LONG_RUNNING = "sh -c 'trap \"exit 143\" TERM; sleep 600 & wait'"


def _poll_until_terminal(backend: LocalContainerBackend, name: str, polls: int = 600) -> Any:
    for _ in range(polls):
        state = backend.poll(name)
        if state.terminal:
            return state
        time.sleep(0.5)
    pytest.fail(f"job {name} did not finish within {polls} polls; see {backend.run_dir(name) / 'stdout.log'}")


@pytest.fixture
def container_home(mlops_home: Path, engine: ContainerEngine, engine_env: dict[str, str],
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, list[str]]]:
    """The MLOps home and a list of job names: every container named after them is removed after the test."""
    for key, value in engine_env.items():
        monkeypatch.setenv(key, value)
    names: list[str] = []
    yield mlops_home, names
    for name in names:
        for attempt in (name, f"{name}-a2", f"{name}-a3"):
            engine.remove(attempt)


def _job(image: str, name: str, *, entrypoint: str = "train.py", channel: Path | None = None) -> JobSpec:
    return JobSpec(
        name=name, kind="training", entrypoint=entrypoint, source_dir=str(EXAMPLE), image=image,
        hyperparameters={"C": 1.0, "max_iter": 500}, channels={"train": str(channel or EXAMPLE / "data" / "train")},
        metric_definitions=[{"name": "train_accuracy", "regex": "train_accuracy=([0-9.]+)"}],
        resources={"cpu": "1", "memory": "1Gi"},
    )


def _container_config(tmp_path: Path, image: str) -> Path:
    """The example, as a model repository in container mode with auto-approval."""
    folder = tmp_path / "configs" / "breast-cancer"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "mlops-wheels", "model", "output"))
    config = yaml.safe_load((folder / "mlops.yaml").read_text())
    config.update(image=image, local={"runtime": "container"})
    config["deployment"]["approval"] = "auto"
    (folder / "mlops.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "mlops.yaml"


def _dag(name: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(name)


def _host_predictions(model_dir: str, payload: bytes) -> Any:
    """What the trained model predicts, computed here with the example's own inference code."""
    module_spec = importlib.util.spec_from_file_location("example_inference", EXAMPLE / "inference.py")
    assert module_spec is not None and module_spec.loader is not None
    inference = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(inference)
    return inference.predict_fn(inference.input_fn(payload.decode(), "application/json"), inference.model_fn(model_dir))


def test_train_evaluate_register_deploy_runs_in_containers_and_the_prediction_comes_from_one(
    airflow_db: Path, container_home: tuple[Path, list[str]], example_image: str, engine: ContainerEngine,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    home, _ = container_home
    config_path = _container_config(tmp_path, example_image)
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(config_path.parent.parent))
    loaded = runtime.config_at(str(config_path))
    assert isinstance(runtime.compute_backend(loaded), LocalContainerBackend)

    run = _dag(dag_id("demo", "breast-cancer", "train")).test(run_conf={"requested_by": "test"})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    jobs = sorted(p.name for p in (home / "jobs").iterdir())
    assert len(jobs) == 2, jobs  # training and evaluation, one attempt each
    for job in jobs:
        record = json.loads((home / "jobs" / job / "job.json").read_text())
        assert record == {"container": job, "engine": engine.name, "image": example_image}
        assert engine.container(job) is None  # removed once its exit status was recorded
    train_log = next((home / "jobs" / j / "stdout.log").read_text() for j in jobs if "train" in j and "eval" not in j)
    assert "train_accuracy=" in train_log  # the container's output reached the run folder's log

    registry = runtime.registry_for(loaded)
    version = registry.get("demo--breast-cancer", "1.0.0")
    assert version.metrics["f1"] > 0.9 and version.lineage["image"] == example_image

    run = _dag(dag_id("demo", "breast-cancer", "deploy")).test(run_conf={"model_version": "1.0.0"})
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    deployed = registry.get("demo--breast-cancer", "1.0.0")
    assert deployed.stage == "production"

    state_dir = LocalServing(home).state_dir(loaded.config.endpoint_name)
    current = json.loads((state_dir / "current.json").read_text())
    container = engine.container(current["container"])
    assert container is not None and container["State"]["Running"], current
    assert current["upstream"] == f"http://127.0.0.1:{engine.host_port(current['container'], 8080)}"
    assert not find_processes(LocalServing._server_of(state_dir))  # no model-server process: the container serves

    payload = (EXAMPLE / "smoke_payload.json").read_bytes()
    status, headers, body = invoke(deployed.deployment["url"], payload)
    assert status == 200 and headers["X-Mlops-Model-Version"] == "1.0.0", body
    expected = _host_predictions(deployed.artifact_uri, payload)
    answer = json.loads(body)
    assert answer["predictions"] == list(expected["predictions"])
    assert answer["probabilities"] == pytest.approx(list(expected["probabilities"]), abs=1e-6)

    LocalServing(home).stop(loaded.config.endpoint_name)
    assert engine.container(current["container"]) is None
    assert not (state_dir / CONTAINERS_FILE).exists()


def test_a_running_container_is_reattached_and_stop_ends_it(
    container_home: tuple[Path, list[str]], example_image: str, engine: ContainerEngine
) -> None:
    home, names = container_home
    name = f"mlops-test-reattach-{uuid.uuid4().hex[:8]}"
    names.append(name)
    spec = _job(example_image, name, entrypoint=LONG_RUNNING)
    first = get_compute_backend("local", home=str(home), runtime="container")
    assert first.submit(spec).status == IN_PROGRESS
    started = engine.container(name)
    assert started is not None and started["State"]["Running"]
    assert started["Config"]["Labels"][RUN_DIR_LABEL] == str(home / "jobs" / name)

    # A retried task builds its backend again (as the trigger does, from serialize()) and submits the same job.
    again = get_compute_backend("local", **first.serialize())
    state = again.submit(spec)
    assert (state.name, state.status) == (name, IN_PROGRESS)
    assert engine.container(name)["Id"] == started["Id"]  # the same container, not a second one
    assert not (home / "jobs" / f"{name}-a2").exists()

    again.stop(name)
    assert engine.container(name) is None
    assert again.poll(name).status == STOPPED
    # A retry after a stop starts the next attempt, in a container of its own.
    assert again.submit(spec).name == f"{name}-a2"
    assert engine.container(f"{name}-a2") is not None
    again.stop(f"{name}-a2")
    assert engine.container(f"{name}-a2") is None


def test_a_retry_after_a_failed_container_starts_the_next_attempt(
    container_home: tuple[Path, list[str]], example_image: str, engine: ContainerEngine, tmp_path: Path
) -> None:
    home, names = container_home
    name = f"mlops-test-retry-{uuid.uuid4().hex[:8]}"
    names.append(name)
    data = tmp_path / "train"
    data.mkdir()  # empty: train.py fails to read train.csv
    spec = _job(example_image, name, channel=data)
    backend = LocalContainerBackend(home)
    failed = _poll_until_terminal(backend, backend.submit(spec).name)
    assert (failed.name, failed.status) == (name, FAILED)
    assert f"the container {name} exited with code" in (failed.failure_reason or ""), failed
    assert "train.csv" in Path(failed.log_uri or "").read_text()  # the container's traceback, in stdout.log
    assert engine.container(name) is None

    shutil.copy2(EXAMPLE / "data" / "train" / "train.csv", data / "train.csv")
    retried = backend.submit(spec)
    assert retried.name == f"{name}-a2"
    assert json.loads((home / "jobs" / f"{name}-a2" / "job.json").read_text())["container"] == f"{name}-a2"
    done = _poll_until_terminal(backend, retried.name)
    assert done.status == COMPLETED, done
    assert done.metrics["train_accuracy"] > 0.9 and Path(done.model_uri or "", "model.joblib").is_file()
    # The image's user wrote model/ without the folder being world-writable.
    assert (home / "jobs" / f"{name}-a2" / "model").stat().st_mode & 0o002 == 0
    # The failed attempt stays failed; submitting again re-attaches to the completed -a2.
    assert backend.submit(spec).name == f"{name}-a2"


def test_the_endpoint_swaps_model_server_containers_and_stop_removes_them(
    container_home: tuple[Path, list[str]], example_image: str, engine: ContainerEngine
) -> None:
    home, names = container_home
    name = f"mlops-test-serve-{uuid.uuid4().hex[:8]}"
    names.append(name)
    backend = LocalContainerBackend(home)
    trained = _poll_until_terminal(backend, backend.submit(_job(example_image, name)).name)
    assert trained.status == COMPLETED, trained
    serving = LocalServing(home, drain_seconds=0.2)
    endpoint = f"swap-{uuid.uuid4().hex[:6]}"
    try:
        first = deploy_container(serving, endpoint, version="1.0.0", model_dir=str(trained.model_uri), image=example_image)
        first_container = json.loads((serving.state_dir(endpoint) / "current.json").read_text())["container"]
        second = deploy_container(serving, endpoint, version="1.0.1", model_dir=str(trained.model_uri), image=example_image)
        assert second["url"] == first["url"] and second["previous_version"] == "1.0.0"
        current = json.loads((serving.state_dir(endpoint) / "current.json").read_text())
        assert engine.container(first_container) is None  # drained, stopped and removed
        assert engine.container(current["container"])["State"]["Running"]
        status, headers, _ = invoke(second["url"], (EXAMPLE / "smoke_payload.json").read_bytes())
        assert status == 200 and headers["X-Mlops-Model-Version"] == "1.0.1"
        assert serving.status(endpoint)["server_running"]
    finally:
        serving.stop(endpoint)
    assert engine.container(current["container"]) is None


def test_container_mode_needs_an_image_and_process_mode_stays_the_default(tmp_path: Path) -> None:
    from airflow_provider_mlops.backends.local import LocalComputeBackend
    from airflow_provider_mlops.config.loader import load_config
    from airflow_provider_mlops.exceptions import ConfigError

    example = load_config(EXAMPLE / "mlops.yaml")
    assert example.config.local.runtime == "process"
    assert type(runtime.compute_backend(example)) is LocalComputeBackend
    assert runtime.backend_kwargs("local", example) == {"home": str(runtime.mlops_home(example))}

    config = _container_config(tmp_path, "unused")
    data = yaml.safe_load(config.read_text())
    del data["image"]
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as refused:
        load_config(config)
    message = str(refused.value)
    assert str(config) in message and "local.runtime" in message and "'image' must be set" in message


@pytest.mark.parametrize(("cpu", "memory", "cpus", "memory_bytes"), [
    ("2", "4Gi", 2.0, str(4 * 1024**3)), ("500m", "512Mi", 0.5, str(512 * 1024**2)), ("1.5", "1G", 1.5, "1000000000"),
    (None, None, None, None),
])
def test_resources_become_the_engines_limits(cpu: str | None, memory: str | None, cpus: float | None,
                                              memory_bytes: str | None) -> None:
    from airflow_provider_mlops.backends.local_container import cpu_limit, memory_limit

    assert (cpu_limit(cpu), memory_limit(memory)) == (cpus, memory_bytes)
