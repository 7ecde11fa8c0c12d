"""
The container variant of the local endpoint's model server (``local.runtime: container``).

The router, its port and the state folder are the process mode's
(:class:`~airflow_provider_mlops.serving.local.LocalServing`); each version's model server is a
container of the model's image instead of a process. It runs the image's own model server, the
one its ``serve`` command starts, with the version's model folder mounted read-only at
``/opt/ml/model``, listening on 8080 inside and published on ``127.0.0.1:<free port>``; the
router forwards to that port. The swap rule is the process mode's: start the new container,
health-check it on ``/ping``, switch ``current.json``, check the router answers with the new
version, wait ``drain_seconds``, then stop the previous container (and any other one of the
endpoint). A container that fails its health check is removed and the previous version keeps
serving.

Every container an endpoint starts is written to ``containers.json`` in its state folder before
it starts, so :func:`stop_containers` (called by ``LocalServing.stop``) removes all of them, even
after a crashed deploy; endpoints without that file never call the engine.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops._proc import find_processes, terminate_group, write_json_atomic
from airflow_provider_mlops.engine import ContainerEngine, ContainerEngineError, Mount, Port, find_engine
from airflow_provider_mlops.exceptions import DeploymentError

if TYPE_CHECKING:
    from airflow_provider_mlops.serving.local import LocalServing

CONTAINERS_FILE = "containers.json"
SERVING_PORT = 8080
#: Labels that tie a model-server container to its endpoint's state folder and version.
ENDPOINT_LABEL = "mlops.endpoint-state"
VERSION_LABEL = "mlops.model-version"


def server_command(version: str, entrypoint: str) -> list[str]:
    """What the image's ``serve`` runs, plus the version (the router checks it on every answer)."""
    return ["python", "-m", "airflow_provider_mlops.serving.server", "--model-dir", "/opt/ml/model",
            "--code-dir", "/opt/ml/code", "--entrypoint", entrypoint, "--port-file", "/tmp/port",
            "--listen", f"0.0.0.0:{SERVING_PORT}", "--version", version]


def container_name(endpoint: str, version: str) -> str:
    """``mlops-serve-<endpoint>-<version>-<ms>``: unique per deploy, in the engines' name alphabet."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", f"mlops-serve-{endpoint}-{version}-{int(time.time() * 1000)}")


def _recorded(state: Path) -> list[str]:
    path = state / CONTAINERS_FILE
    try:
        names = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise DeploymentError(
            f"{path} is unreadable ({exc}); it lists the endpoint's model-server containers. Fix: remove the containers "
            f"labelled {ENDPOINT_LABEL}={state} by hand, then delete the file"
        ) from None
    listed = names.get("containers") if isinstance(names, dict) else None
    return [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []


def container_serving(current: dict[str, Any]) -> bool:
    """Whether ``current.json``'s model-server container runs (False, without the engine, for a process)."""
    name = current.get("container")
    if not isinstance(name, str):
        return False
    record = find_engine().container(name)
    return bool(record and (record.get("State") or {}).get("Running"))


def deploy_container(
    serving: LocalServing,
    endpoint: str,
    *,
    version: str,
    model_dir: str,
    image: str,
    entrypoint: str = "inference.py",
    port: int | None = None,
    health_timeout: float = 60.0,
) -> dict[str, Any]:
    """Serve ``version`` from a container of ``image`` on ``endpoint`` without dropping requests."""
    engine = find_engine()
    if engine.image(image) is None:
        raise DeploymentError(
            f"endpoint {endpoint}: the image {image} (mlops.yaml 'image', or the version's lineage) is not among the "
            f"{engine.name} engine's local images; the local backend never pulls. Fix: `{engine.name} build -t {image} .` "
            "in the model's folder"
        )
    state = serving.state_dir(endpoint)
    url = serving._ensure_router(endpoint, port, health_timeout)
    current_file = state / "current.json"
    current = serving._read_state(current_file)
    if current.get("version") == version and current.get("image") == image and container_serving(current):
        return {"endpoint": endpoint, "url": url, "version": version, "previous_version": current.get("previous_version"),
                "unchanged": True}
    name = container_name(endpoint, version)
    log_path = state / "servers" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    serving._write_state(state / CONTAINERS_FILE, {"containers": [*_recorded(state), name]}, endpoint)  # before it exists: never lost
    try:
        engine.start(image, server_command(version, entrypoint), name=name,
                     mounts=[Mount(Path(model_dir), "/opt/ml/model", read_only=True)], ports=[Port(SERVING_PORT)],
                     labels={ENDPOINT_LABEL: str(state), VERSION_LABEL: version})
        upstream = f"http://127.0.0.1:{engine.host_port(name, SERVING_PORT)}"
        serving._health_check(upstream, health_timeout, f"{endpoint} {version} (container {name})", log_path)
    except BaseException:
        _retire(engine, state, [name], log_path)
        raise
    record = {"upstream": upstream, "version": version, "container": name, "image": image}
    deployed = serving._switch_to(endpoint, url, current, record, health_timeout,
                                  lambda: _retire(engine, state, [name], log_path))
    # The previous version, and any server a crashed deploy left: containers, and processes of the process mode.
    _retire(engine, state, [n for n in _recorded(state) if n != name])
    for pid in find_processes(serving._server_of(state)):
        terminate_group(pid)
    return deployed


def _retire(engine: ContainerEngine, state: Path, names: list[str], log_path: Path | None = None) -> None:
    """Stop and remove ``names`` (their output kept in ``log_path`` when given), and forget them."""
    for name in names:
        if log_path is not None:
            log_path.write_text(engine.logs(name))
        engine.stop(name)
        engine.remove(name)
    remaining = [n for n in _recorded(state) if n not in names]
    path = state / CONTAINERS_FILE
    if remaining:
        write_json_atomic(path, {"containers": remaining})
    else:
        path.unlink(missing_ok=True)


def stop_containers(state: Path) -> None:
    """Remove every model-server container the endpoint at ``state`` started; no engine call when it started none."""
    names = _recorded(state)
    if not names:
        return
    try:
        engine = find_engine()
    except ContainerEngineError as exc:
        raise DeploymentError(
            f"the endpoint at {state} runs model-server containers {names}, but no container engine can be reached to "
            f"stop them ({exc})"
        ) from None
    _retire(engine, state, names)
