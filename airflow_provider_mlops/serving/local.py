"""
Local endpoints: a stable router port in front of one model-server process per version.

The router and servers are started detached (:func:`~airflow_provider_mlops._proc.spawn_detached`):
stdin ``/dev/null``, no inherited descriptors, a session of their own, output to log files, so a
deploy task ends when its work ends.

A deploy starts the new version's server, health-checks it on ``/ping``, switches the router
(one atomic file write), checks the router now answers with the new version, and only then
stops the old server. If the new server fails its health check it is stopped and the previous
version keeps serving. State lives in ``<home>/endpoints/<name>/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops._proc import pid_alive, spawn_detached, write_json_atomic
from airflow_provider_mlops.airflow_api import free_port
from airflow_provider_mlops.exceptions import DeploymentError

if TYPE_CHECKING:
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.registry.base import ModelVersion


def _terminate(pid: int | None, timeout: float = 10.0) -> None:
    if not pid_alive(pid):
        return
    assert pid is not None
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def invoke(url: str, payload: bytes, content_type: str = "application/json", timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """POST ``payload`` to ``<url>/invocations``; return status, headers and body."""
    request = urllib.request.Request(f"{url}/invocations", data=payload, method="POST")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class LocalServing:
    """
    Serve model versions on local endpoints.

    :param home: the MLOps home folder; endpoints live in ``<home>/endpoints``.
    :param drain_seconds: how long the old server keeps running after the switch, for requests
        already forwarded to it.
    """

    name = "local"

    def __init__(self, home: str | Path, drain_seconds: float = 1.0) -> None:
        self.home = Path(home)
        self.drain_seconds = drain_seconds

    def state_dir(self, endpoint: str) -> Path:
        return self.home / "endpoints" / endpoint

    def status(self, endpoint: str) -> dict[str, Any]:
        state = self.state_dir(endpoint)
        router = json.loads((state / "router.json").read_text()) if (state / "router.json").exists() else {}
        current = json.loads((state / "current.json").read_text()) if (state / "current.json").exists() else {}
        running = pid_alive(router.get("pid"))
        return {
            "endpoint": endpoint,
            "url": f"http://127.0.0.1:{router['port']}" if running and router.get("port") else None,
            "router_running": running,
            "version": current.get("version") if running else None,
            "server_running": pid_alive(current.get("pid")),
            "history": current.get("history", []),
        }

    def _ensure_router(self, endpoint: str, port: int | None, timeout: float) -> str:
        state = self.state_dir(endpoint)
        state.mkdir(parents=True, exist_ok=True)
        router_file = state / "router.json"
        router = json.loads(router_file.read_text()) if router_file.exists() else {}
        if pid_alive(router.get("pid")):
            if port is not None and router.get("port") != port:
                raise DeploymentError(
                    f"endpoint {endpoint} already listens on port {router.get('port')}, not {port}: "
                    f"stop it with 'mlops endpoint stop {endpoint}' to move it"
                )
            return f"http://127.0.0.1:{router['port']}"
        port = port or router.get("port") or free_port()
        (state / "router.port").unlink(missing_ok=True)
        process = spawn_detached(
            [sys.executable, "-m", "airflow_provider_mlops.serving.router", "--state-dir", str(state), "--port", str(port)],
            log_path=state / "router.log",
        )
        write_json_atomic(router_file, {"pid": process.pid, "port": port})
        self._wait_for_file(state / "router.port", process, timeout, f"endpoint {endpoint} router", state / "router.log")
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def _wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float, what: str, log: Path) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return path.read_text().strip()
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                raise DeploymentError(f"{what} exited with code {process.returncode} before it was ready: {tail}")
            time.sleep(0.1)
        raise DeploymentError(f"{what} was not ready within {timeout:.0f}s; see {log}")

    def deploy(self, endpoint: str, version: ModelVersion, loaded: LoadedConfig) -> dict[str, Any]:
        """The serving protocol: serve a registered ``version`` of ``loaded``'s model on ``endpoint``."""
        cfg = loaded.config
        return self.deploy_model(
            endpoint,
            version=version.semver,
            model_dir=version.artifact_uri,
            code_dir=loaded.resolve(cfg.training.source_dir),
            entrypoint=cfg.deployment.inference_entrypoint,
            port=cfg.deployment.port,
            health_timeout=cfg.deployment.health_check_timeout_seconds,
        )

    def invoke(self, deployed: dict[str, Any], payload: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
        """The serving protocol: send one request to a deployed endpoint."""
        return invoke(deployed["url"], payload, content_type)

    def deploy_model(
        self,
        endpoint: str,
        *,
        version: str,
        model_dir: str,
        code_dir: str,
        entrypoint: str = "inference.py",
        port: int | None = None,
        health_timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Serve ``version`` on ``endpoint`` without dropping requests; return where it answers."""
        state = self.state_dir(endpoint)
        url = self._ensure_router(endpoint, port, health_timeout)
        current_file = state / "current.json"
        current = json.loads(current_file.read_text()) if current_file.exists() else {}
        if current.get("version") == version and pid_alive(current.get("pid")):
            return {"endpoint": endpoint, "url": url, "version": version, "previous_version": current.get("previous_version"), "unchanged": True}
        server_dir = state / "servers" / f"{version}-{int(time.time() * 1000)}"
        server_dir.mkdir(parents=True)
        port_file = server_dir / "port"
        log_path = server_dir / "server.log"
        process = spawn_detached(
            [sys.executable, "-m", "airflow_provider_mlops.serving.server", "--model-dir", model_dir,
             "--code-dir", code_dir, "--entrypoint", entrypoint, "--port-file", str(port_file), "--version", version],
            log_path=log_path, cwd=code_dir,
        )
        try:
            server_port = self._wait_for_file(port_file, process, health_timeout, f"model server for {endpoint} {version}", log_path)
            upstream = f"http://127.0.0.1:{server_port}"
            self._health_check(upstream, health_timeout, f"{endpoint} {version}", log_path)
        except DeploymentError:
            _terminate(process.pid)
            raise
        previous_pid, previous_version = current.get("pid"), current.get("version")
        history = [*current.get("history", []), version][-20:]
        write_json_atomic(current_file, {"upstream": upstream, "version": version, "pid": process.pid,
                                   "previous_version": previous_version, "history": history})
        # The router must answer with the new version before the old one goes.
        deadline = time.monotonic() + health_timeout
        while True:
            status, headers, _ = http_get(f"{url}/ping")
            if status == 200 and headers.get("X-Mlops-Model-Version") == version:
                break
            if time.monotonic() > deadline:
                write_json_atomic(current_file, current)
                _terminate(process.pid)
                raise DeploymentError(f"endpoint {endpoint} did not switch to {version} within {health_timeout:.0f}s")
            time.sleep(0.1)
        if previous_pid and previous_pid != process.pid:
            time.sleep(self.drain_seconds)
            _terminate(previous_pid)
        return {"endpoint": endpoint, "url": url, "version": version, "previous_version": previous_version, "unchanged": False}

    @staticmethod
    def _health_check(upstream: str, timeout: float, what: str, log: Path) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                status, _, body = http_get(f"{upstream}/ping")
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:200]!r}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise DeploymentError(f"model server for {what} failed its health check ({last}); see {log}")

    def adopt_endpoint(self, old: str, endpoint: str) -> bool:
        """
        Rename endpoint ``old`` to ``endpoint`` while it serves: its router, port and model server go on.

        The state folder moves and ``old`` stays as a link to it, so the running router (which
        reads ``<home>/endpoints/<old>/``) and ``mlops endpoint status <old>`` keep working.
        Nothing happens when ``endpoint`` exists already or ``old`` does not.

        :return: True when the endpoint was moved.
        """
        source, target = self.state_dir(old), self.state_dir(endpoint)
        if target.exists() or source.is_symlink() or not source.is_dir():
            return False
        os.rename(source, target)
        source.symlink_to(target.name, target_is_directory=True)
        return True

    def stop(self, endpoint: str) -> None:
        """Stop the endpoint's router and every model server it started."""
        state = self.state_dir(endpoint)
        for name in ("current.json", "router.json"):
            path = state / name
            if path.exists():
                _terminate(json.loads(path.read_text()).get("pid"))
        (state / "current.json").unlink(missing_ok=True)
