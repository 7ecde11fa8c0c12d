"""
Local endpoints: a stable router port in front of one model-server process per version.

The router and servers are started detached (:func:`~airflow_provider_mlops._proc.spawn_detached`):
stdin ``/dev/null``, no inherited descriptors, a session of their own, output to log files, so a
deploy task ends when its work ends.

A deploy starts the new version's server, health-checks it on ``/ping``, switches the router
(one atomic file write), checks the router now answers with the new version, and only then
stops the old server, and any other server of the endpoint that a crashed deploy left behind.
If the new server fails its health check it is stopped and the previous version keeps serving.
State lives in ``<home>/endpoints/<name>/``: ``router.json`` (the router's pid, start time and
port) and ``current.json`` (the serving version's upstream, pid and start time).

Nothing is lost track of. A recorded pid counts only while the process is the one recorded (its
start time and command line match), so a stale pid (after a reboot, pid 1) is never signalled.
Routers and model servers are also found by their command line, which names the endpoint's
state folder: a state file that is corrupt or could not be written (a full disk) hides no
process from :meth:`LocalServing.stop`. A router that died is started again, on the same port,
by the next deploy or invoke; while it lives, its supervisor restarts its worker by itself.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_mlops._proc import (
    argv_value,
    find_processes,
    log_tail,
    process_cmdline,
    process_matches,
    process_start_time,
    spawn_detached,
    terminate_group,
    write_json_atomic,
)
from airflow_provider_mlops.airflow_api import free_port
from airflow_provider_mlops.exceptions import DeploymentError
from airflow_provider_mlops.serving.containers import container_serving, deploy_container, stop_containers
from airflow_provider_mlops.serving.server import Limits

if TYPE_CHECKING:
    from airflow_provider_mlops.config.loader import LoadedConfig
    from airflow_provider_mlops.registry.base import ModelVersion

logger = logging.getLogger(__name__)

ROUTER_MODULE = "airflow_provider_mlops.serving.router"
SERVER_MODULE = "airflow_provider_mlops.serving.server"


def _headers(message: Any) -> dict[str, str]:
    """Response headers under their usual capitalisation (``X-Mlops-Model-Version``), however the server cased them."""
    return {key.title(): value for key, value in message.items()}


def _fetch(request: urllib.request.Request | str, timeout: float) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _headers(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, _headers(exc.headers), exc.read()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    return _fetch(url, timeout)


def invoke(url: str, payload: bytes, content_type: str = "application/json", timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """POST ``payload`` to ``<url>/invocations``; return status, headers and body."""
    request = urllib.request.Request(f"{url}/invocations", data=payload, method="POST", headers={"Content-Type": content_type})
    return _fetch(request, timeout)


def _is_module(argv: list[str], module: str) -> bool:
    return "-m" in argv and module in argv


class LocalServing:
    """
    Serve model versions on local endpoints.

    :param home: the MLOps home folder; endpoints live in ``<home>/endpoints``.
    :param drain_seconds: how long the old server keeps running after the switch, for requests
        already forwarded to it.
    :param limits: the request limits of the routers and model servers this starts (default:
        the ``MLOPS_ENDPOINT_*`` environment variables, see :class:`~airflow_provider_mlops.serving.server.Limits`).
    """

    name = "local"

    def __init__(self, home: str | Path, drain_seconds: float = 1.0, limits: Limits | None = None) -> None:
        self.home = Path(home)
        self.drain_seconds = drain_seconds
        try:
            self.limits = limits or Limits.from_env()
        except ValueError as exc:
            raise DeploymentError(str(exc)) from None

    def state_dir(self, endpoint: str) -> Path:
        return self.home / "endpoints" / endpoint

    # -- state and the processes it names -------------------------------------------------

    @staticmethod
    def _read_state(path: Path) -> dict[str, Any]:
        """A state file's JSON; a missing one is empty, and so is a corrupt one (logged: the processes are found anyway)."""
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("%s is unreadable (%s); ignoring it: the endpoint's processes are found by their command line", path, exc)
            return {}
        if not isinstance(data, dict):
            logger.warning("%s holds %s, not a JSON object; ignoring it", path, type(data).__name__)
            return {}
        return data

    def _write_state(self, path: Path, data: dict[str, Any], endpoint: str) -> None:
        try:
            write_json_atomic(path, data)
        except OSError as exc:
            raise DeploymentError(
                f"endpoint {endpoint}: cannot write {path} ({exc.strerror or exc}); free space on that disk "
                f"(or fix its permissions) and deploy again"
            ) from None

    @staticmethod
    def _router_of(state: Path) -> Callable[[list[str]], bool]:
        """Tells this endpoint's router by its command line (``-m ...router --state-dir <state>``)."""
        target = state.resolve()

        def ours(argv: list[str]) -> bool:
            folder = argv_value(argv, "--state-dir")
            return _is_module(argv, ROUTER_MODULE) and folder is not None and Path(folder).resolve() == target

        return ours

    @staticmethod
    def _server_of(state: Path) -> Callable[[list[str]], bool]:
        """Tells this endpoint's model servers by their command line (their port files live under ``servers/``)."""
        target = (state / "servers").resolve()

        def ours(argv: list[str]) -> bool:
            port_file = argv_value(argv, "--port-file")
            return _is_module(argv, SERVER_MODULE) and port_file is not None and Path(port_file).resolve().parent.parent == target

        return ours

    def _recorded(self, path: Path, match: Callable[[list[str]], bool]) -> list[int]:
        """The pid a state file records, when that process is still the one recorded."""
        record = self._read_state(path)
        return [record["pid"]] if process_matches(record.get("pid"), record.get("started"), match) else []

    def _live_router(self, state: Path, endpoint: str, *, record: bool = True) -> dict[str, Any] | None:
        """The running router of ``state`` (pid, started, port), or None; one found without a record is recorded again."""
        router = self._read_state(state / "router.json")
        match = self._router_of(state)
        if process_matches(router.get("pid"), router.get("started"), match):
            return router
        found = find_processes(match)
        if not found:
            return None
        pid = found[0]
        port = argv_value(process_cmdline(pid) or [], "--port")
        adopted = {"pid": pid, "started": process_start_time(pid), "port": int(port) if port and port.isdigit() else None}
        logger.warning("endpoint %s: router pid %s was not recorded in router.json; adopting it", endpoint, pid)
        if record:
            for extra in found[1:]:  # two routers cannot share a port; any other one is stray
                terminate_group(extra)
            self._write_state(state / "router.json", adopted, endpoint)
        return adopted

    def _server_alive(self, current: dict[str, Any], state: Path) -> bool:
        return process_matches(current.get("pid"), current.get("started"), self._server_of(state))

    def status(self, endpoint: str) -> dict[str, Any]:
        state = self.state_dir(endpoint)
        router = self._live_router(state, endpoint, record=False) if state.is_dir() else None
        current = self._read_state(state / "current.json")
        return {
            "endpoint": endpoint,
            "url": f"http://127.0.0.1:{router['port']}" if router and router.get("port") else None,
            "router_running": router is not None,
            "router_pid": router["pid"] if router else None,
            "version": current.get("version") if router else None,
            "server_running": self._server_alive(current, state) or container_serving(current),
            "history": current.get("history", []),
        }

    # -- the router ------------------------------------------------------------------------

    def ensure_running(self, endpoint: str, timeout: float = 60.0) -> str:
        """Return the endpoint's URL, starting its router again (on its port) if it died."""
        state = self.state_dir(endpoint)
        if not (state / "current.json").exists():
            raise DeploymentError(f"endpoint {endpoint} has no deployed version under {self.home}; deploy one first")
        return self._ensure_router(endpoint, None, timeout)

    def _ensure_router(self, endpoint: str, port: int | None, timeout: float) -> str:
        state = self.state_dir(endpoint)
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeploymentError(f"endpoint {endpoint}: cannot create {state} ({exc.strerror}); free space there and deploy again") from None
        router_file = state / "router.json"
        router = self._live_router(state, endpoint)
        if router is not None:
            if port is not None and router.get("port") != port:
                raise DeploymentError(
                    f"endpoint {endpoint} already listens on port {router.get('port')}, not {port}: "
                    f"stop it with 'mlops endpoint stop {endpoint}' to move it"
                )
            return f"http://127.0.0.1:{router['port']}"
        recorded = self._read_state(router_file).get("port")
        port = port or (recorded if isinstance(recorded, int) and 0 < recorded < 65536 else None) or free_port()
        log = state / "router.log"
        process = spawn_detached(
            [sys.executable, "-m", ROUTER_MODULE, "--state-dir", str(state), "--port", str(port)],
            log_path=log, env={**os.environ, **self.limits.to_env()},
        )
        try:
            self._write_state(router_file, {"pid": process.pid, "started": process_start_time(process.pid), "port": port}, endpoint)
            self._wait_router(f"http://127.0.0.1:{port}", process, timeout, endpoint, log)
        except BaseException:
            terminate_group(process.pid)  # never a router that no state file names
            raise
        return f"http://127.0.0.1:{port}"

    @staticmethod
    def _wait_router(url: str, process: subprocess.Popen[bytes], timeout: float, endpoint: str, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DeploymentError(
                    f"endpoint {endpoint}: the router exited with code {process.returncode} before it served: {log_tail(log)}"
                )
            try:
                http_get(f"{url}/ping", timeout=2)
                return  # any HTTP answer: the router serves (503 until a version is deployed)
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise DeploymentError(f"endpoint {endpoint}: the router did not serve {url} within {timeout:.0f}s; see {log}")

    # -- the serving protocol ----------------------------------------------------------------

    def deploy(self, endpoint: str, version: ModelVersion, loaded: LoadedConfig) -> dict[str, Any]:
        """The serving protocol: serve a registered ``version`` of ``loaded``'s model on ``endpoint``."""
        cfg = loaded.config
        if cfg.local.runtime == "container":  # the model server runs in the model's image
            image = version.lineage.get("image")
            return deploy_container(
                self, endpoint, version=version.semver, model_dir=version.artifact_uri,
                image=image if image and not str(image).startswith("sha256:") else str(cfg.image),
                entrypoint=cfg.deployment.inference_entrypoint, port=cfg.deployment.port,
                health_timeout=cfg.deployment.health_check_timeout_seconds,
            )
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
        """The serving protocol: send one request to a deployed endpoint, starting its router again if it died."""
        endpoint = deployed.get("endpoint")
        url = deployed["url"]
        if endpoint and self.state_dir(endpoint).is_dir():
            url = self.ensure_running(endpoint)
        try:
            return invoke(url, payload, content_type)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeploymentError(f"endpoint {endpoint} at {url} did not answer ({reason}); see its router.log") from None

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
        current = self._read_state(current_file)
        if current.get("version") == version and self._server_alive(current, state):
            return {"endpoint": endpoint, "url": url, "version": version, "previous_version": current.get("previous_version"), "unchanged": True}
        server_dir = state / "servers" / f"{version}-{int(time.time() * 1000)}"
        try:
            server_dir.mkdir(parents=True)
        except OSError as exc:
            raise DeploymentError(f"endpoint {endpoint}: cannot create {server_dir} ({exc.strerror}); free space there and deploy again") from None
        port_file, log_path = server_dir / "port", server_dir / "server.log"
        process = spawn_detached(
            [sys.executable, "-m", SERVER_MODULE, "--model-dir", model_dir,
             "--code-dir", code_dir, "--entrypoint", entrypoint, "--port-file", str(port_file), "--version", version],
            log_path=log_path, cwd=code_dir, env={**os.environ, **self.limits.to_env()},
        )
        try:
            server_port = self._wait_for_file(port_file, process, health_timeout, f"model server for {endpoint} {version}", log_path)
            upstream = f"http://127.0.0.1:{server_port}"
            self._health_check(upstream, health_timeout, f"{endpoint} {version}", log_path)
        except BaseException:
            terminate_group(process.pid)
            raise
        record = {"upstream": upstream, "version": version, "pid": process.pid, "started": process_start_time(process.pid)}
        deployed = self._switch_to(endpoint, url, current, record, health_timeout, lambda: terminate_group(process.pid))
        previous = [current["pid"]] if self._server_alive(current, state) else []
        for pid in {*previous, *find_processes(self._server_of(state))}:  # the previous version, and any a crashed deploy left
            if pid != process.pid:
                terminate_group(pid)
        stop_containers(state)  # a container-mode server this endpoint ran before
        return deployed

    def _switch_to(self, endpoint: str, url: str, current: dict[str, Any], record: dict[str, Any], timeout: float,
                   stop_new: Callable[[], None]) -> dict[str, Any]:
        """
        Make the healthy new server ``record`` (``upstream``, ``version``, what identifies it) current,
        wait until the router serves it, then drain; the caller retires the previous server after.

        On any failure ``current.json`` is put back and ``stop_new`` stops the new server, so the
        previous version keeps serving. Shared by the process and the container mode.
        """
        current_file = self.state_dir(endpoint) / "current.json"
        version = record["version"]
        history = [*current.get("history", []), version][-20:]
        try:
            self._write_state(current_file, {**record, "previous_version": current.get("version"), "history": history}, endpoint)
        except BaseException:
            stop_new()
            raise
        try:
            self._wait_switch(endpoint, url, version, timeout)
        except BaseException:
            self._restore(current_file, current)
            stop_new()
            raise
        time.sleep(self.drain_seconds)
        return {"endpoint": endpoint, "url": url, "version": version, "previous_version": current.get("version"), "unchanged": False}

    def _wait_switch(self, endpoint: str, url: str, version: str, timeout: float) -> None:
        """Wait until the router answers with ``version``; a router that died meanwhile is started again once."""
        state = self.state_dir(endpoint)
        deadline = time.monotonic() + timeout
        restarted, last = False, "no answer"
        while True:
            try:
                status, headers, _ = http_get(f"{url}/ping")
                if status == 200 and headers.get("X-Mlops-Model-Version") == version:
                    return
                last = f"HTTP {status} from version {headers.get('X-Mlops-Model-Version')}"
            except (urllib.error.URLError, OSError) as exc:
                last = f"no answer: {getattr(exc, 'reason', exc)}"
                if not restarted and self._live_router(state, endpoint) is None:
                    logger.warning("endpoint %s: the router died during the deploy of %s; starting it again", endpoint, version)
                    restarted = True
                    self._ensure_router(endpoint, None, max(deadline - time.monotonic(), 5.0))
                    continue
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"endpoint {endpoint} did not switch to {version} within {timeout:.0f}s ({last}); "
                    f"{version} was stopped and the previous version stays; see {state / 'router.log'}"
                )
            time.sleep(0.1)

    def _restore(self, current_file: Path, current: dict[str, Any]) -> None:
        """Put back the previous ``current.json``; when even that cannot be written, remove it rather than name a stopped server."""
        try:
            write_json_atomic(current_file, current)
        except OSError:
            current_file.unlink(missing_ok=True)

    @staticmethod
    def _wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float, what: str, log: Path) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                return path.read_text().strip()
            if process.poll() is not None:
                raise DeploymentError(f"{what} exited with code {process.returncode} before it was ready: {log_tail(log, 800)}")
            time.sleep(0.1)
        raise DeploymentError(f"{what} was not ready within {timeout:.0f}s; see {log}")

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
        """Stop the endpoint's router and every model server it started, recorded or not."""
        state = self.state_dir(endpoint)
        if not state.is_dir():
            return
        routers = {*self._recorded(state / "router.json", self._router_of(state)), *find_processes(self._router_of(state))}
        servers = {*self._recorded(state / "current.json", self._server_of(state)), *find_processes(self._server_of(state))}
        for pid in [*routers, *servers]:
            terminate_group(pid)
        stop_containers(state)  # the container mode's model servers (no engine call when there are none)
        (state / "current.json").unlink(missing_ok=True)

