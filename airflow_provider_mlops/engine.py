"""
The container engine: build, run, stop and inspect images with docker or podman.

:func:`find_engine` picks, in this order:

1. ``MLOPS_CONTAINER_ENGINE`` when set: ``docker``, ``podman``, or the path of either CLI;
2. docker, when its daemon answers ``docker version`` (a docker CLI alone is not an engine);
3. podman, with the settings ``scripts/containers.sh`` writes: ``CONTAINERS_CONF`` and
   ``CONTAINERS_STORAGE_CONF`` when set, else the files in ``MLOPS_CONTAINERS_DIR`` (default
   ``$XDG_CACHE_HOME/mlops-containers``, that is ``~/.cache/mlops-containers``).

Every call has a timeout and raises :class:`ContainerEngineError` naming the command, the
engine's own message and the fix. Environment values reach containers through the CLI's
environment (``--env NAME``), never its command line, so they stay out of process lists, logs
and error messages. Stdlib only; nothing imports this module at DAG parse time.

    python -m airflow_provider_mlops.engine env     # the engine, as shell exports (scripts/ci/package.sh)
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from airflow_provider_mlops.exceptions import BackendError

log = logging.getLogger(__name__)

ENGINE_VARIABLE = "MLOPS_CONTAINER_ENGINE"
SETTINGS_VARIABLE = "MLOPS_CONTAINERS_DIR"
# How docker ("No such image", "No such object") and podman ("image not known", "no such container") say a
# reference does not exist.
MISSING_MARKERS = ("no such", "not known", "not found")
#: The variables that carry podman's settings (scripts/containers.sh prints them).
PODMAN_SETTINGS = ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "TMPDIR")
SETUP_HINT = "run `bash scripts/containers.sh` (as root) in the provider's repository: it installs podman and its settings"


class ContainerEngineError(BackendError):
    """The container engine is missing, or refused or timed out on a command."""


class ContainerTimeoutError(ContainerEngineError):
    """A container (or an engine command) ran past its timeout; the container was not stopped."""


@dataclass(frozen=True)
class Mount:
    """A host folder or file at ``target`` inside the container."""

    source: Path
    target: str
    read_only: bool = False

    def flag(self) -> str:
        return f"{self.source}:{self.target}{':ro' if self.read_only else ''}"


@dataclass(frozen=True)
class Port:
    """The container's ``container`` port, published on ``host_ip:host`` (0: a free port)."""

    container: int
    host: int = 0
    host_ip: str = "127.0.0.1"

    def flag(self) -> str:
        return f"{self.host_ip}:{self.host or ''}:{self.container}"


@dataclass(frozen=True)
class ContainerResult:
    """A finished container: its exit code and its output (stdout and stderr)."""

    name: str
    exit_code: int
    logs: str


@dataclass(frozen=True)
class ContainerEngine:
    """
    One container CLI, docker or podman, and the environment it needs.

    :param name: ``docker`` or ``podman``.
    :param binary: the CLI's path.
    :param env: variables added to the CLI's environment (podman's settings).
    :param hint: what to do when a command fails for a reason the engine's setup explains.
    """

    name: Literal["docker", "podman"]
    binary: str
    env: Mapping[str, str] = field(default_factory=dict)
    hint: str = ""

    # -- the CLI -----------------------------------------------------------------------------

    def call(
        self, args: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<engine> args``; raise :class:`ContainerEngineError` on a failure when ``check``."""
        command = [self.binary, *args]
        log.debug("container engine: %s", shlex.join(command))
        try:
            result = subprocess.run(
                command,
                env={**os.environ, **self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ContainerTimeoutError(
                f"`{shlex.join(command)}` did not finish within {timeout:g} s; allowed: a command that ends in time. "
                f"Fix: raise the timeout, or look at what the engine waits for (`{self.name} ps -a`)"
            ) from exc
        except OSError as exc:
            raise ContainerEngineError(f"cannot run {self.binary}: {exc}. Fix: {SETUP_HINT}") from exc
        if check and result.returncode != 0:
            raise self._error(command, result)
        return result

    def _error(self, command: Sequence[str], result: subprocess.CompletedProcess[str]) -> ContainerEngineError:
        message = (result.stderr.strip() or result.stdout.strip())[-2000:]
        fix = self.hint or "read the engine's message above"
        return ContainerEngineError(
            f"`{shlex.join(command)}` failed with exit status {result.returncode}: {message or '(no output)'}. Fix: {fix}"
        )

    # -- images --------------------------------------------------------------------------------

    def build(
        self,
        context: Path,
        *,
        tags: Sequence[str],
        dockerfile: Path | None = None,
        labels: Mapping[str, str] | None = None,
        build_args: Mapping[str, str] | None = None,
        timeout: float = 1800,
    ) -> str:
        """
        Build ``context`` and tag the image; base images missing locally are pulled as usual.

        :return: the image id.
        """
        if not (dockerfile or context / "Dockerfile").is_file():
            raise ContainerEngineError(
                f"{dockerfile or context / 'Dockerfile'} does not exist; a build needs a Dockerfile. "
                "Fix: pass the Dockerfile's path, or build a folder that has one"
            )
        with tempfile.TemporaryDirectory(prefix="mlops-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            args = ["build", "--iidfile", str(iidfile)]
            if dockerfile:
                args += ["--file", str(dockerfile)]
            args += [a for tag in tags for a in ("--tag", tag)]
            args += [a for k, v in sorted((labels or {}).items()) for a in ("--label", f"{k}={v}")]
            args += [a for k, v in sorted((build_args or {}).items()) for a in ("--build-arg", f"{k}={v}")]
            self.call([*args, str(context)], timeout=timeout)
            return iidfile.read_text().strip()

    def image(self, reference: str) -> dict[str, Any] | None:
        """``image inspect``: the image's record, or None when it does not exist locally."""
        return self._inspect("image", reference)

    # -- containers ------------------------------------------------------------------------------

    def start(
        self,
        image: str,
        command: Sequence[str] = (),
        *,
        name: str,
        entrypoint: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount] = (),
        ports: Sequence[Port] = (),
        workdir: str | None = None,
        user: str | None = None,
        cpus: float | None = None,
        memory: str | None = None,
        labels: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> str:
        """
        Start a detached container named ``name`` (names are unique: a second start fails).

        :param entrypoint: replaces the image's ENTRYPOINT; ``command`` follows it.
        :param env: the container's environment (values travel in the CLI's environment).
        :return: the container id.
        """
        for mount in mounts:
            if not mount.source.exists():
                raise ContainerEngineError(
                    f"container {name}: the mount source {mount.source} (for {mount.target}) does not exist. "
                    "Fix: create it before starting the container"
                )
        args = ["run", "--detach", "--name", name]
        if entrypoint is not None:
            # --entrypoint takes one word; the rest of the entrypoint goes before the command.
            args += ["--entrypoint", entrypoint[0] if entrypoint else ""]
            command = [*entrypoint[1:], *command]
        args += [a for key in sorted(env or {}) for a in ("--env", key)]
        args += [a for mount in mounts for a in ("--volume", mount.flag())]
        args += [a for port in ports for a in ("--publish", port.flag())]
        args += [a for k, v in sorted((labels or {}).items()) for a in ("--label", f"{k}={v}")]
        for flag, value in (("--workdir", workdir), ("--user", user), ("--cpus", cpus), ("--memory", memory)):
            if value is not None:
                args += [flag, str(value)]
        result = self.call([*args, image, *command], env=dict(env or {}), timeout=timeout)
        return result.stdout.strip().splitlines()[-1]

    def wait(self, name: str, *, timeout: float) -> int:
        """Wait for the container to exit; its exit code. :class:`ContainerTimeoutError` leaves it running."""
        result = self.call(["wait", name], timeout=timeout)
        return int(result.stdout.strip().splitlines()[-1])

    def run(self, image: str, command: Sequence[str] = (), *, name: str, timeout: float, **options: Any) -> ContainerResult:
        """
        Run a container to its end (``start``, ``wait``), then collect its logs and remove it.

        A container that runs past ``timeout`` is stopped and removed before the error is raised.
        """
        self.start(image, command, name=name, **options)
        try:
            exit_code = self.wait(name, timeout=timeout)
        except ContainerTimeoutError as exc:
            self.stop(name)
            raise ContainerTimeoutError(
                f"container {name} ({image}) ran past its timeout of {timeout:g} s and was stopped. "
                "Fix: raise the timeout, or find what it waits for in its logs"
            ) from exc
        finally:
            logs = self.logs(name)
            self.remove(name)
        return ContainerResult(name=name, exit_code=exit_code, logs=logs)

    def stop(self, name: str, *, grace: int = 10) -> int | None:
        """
        Stop the container: SIGTERM, then SIGKILL after ``grace`` seconds.

        :return: its exit code, or None when no such container exists.
        """
        result = self.call(["stop", "--time", str(grace), name], timeout=grace + 60, check=False)
        state = self.container(name)
        if state is None:
            return None
        if result.returncode != 0 and state["State"].get("Running"):
            raise self._error([self.binary, "stop", name], result)
        return int(state["State"]["ExitCode"])

    def remove(self, name: str) -> None:
        """Remove the container (stopping it first); nothing to do when it does not exist."""
        result = self.call(["rm", "--force", name], timeout=120, check=False)
        if result.returncode != 0 and self.container(name) is not None:
            raise self._error([self.binary, "rm", "--force", name], result)

    def logs(self, name: str, *, timeout: float = 60) -> str:
        """The container's output so far (stdout and stderr), or "" when it does not exist."""
        result = self.call(["logs", name], timeout=timeout, check=False)
        return result.stdout + result.stderr if result.returncode == 0 else ""

    def host_port(self, name: str, container_port: int) -> int:
        """The host port that publishes the container's ``container_port`` (see :class:`Port`)."""
        state = self.container(name)
        bindings = ((state or {}).get("NetworkSettings") or {}).get("Ports") or {}
        published = bindings.get(f"{container_port}/tcp") or []
        if not published:
            raise ContainerEngineError(
                f"container {name} publishes no host port for {container_port}/tcp (published: {sorted(bindings)}). "
                "Fix: start it with a Port for that container port"
            )
        return int(published[0]["HostPort"])

    def container(self, name: str) -> dict[str, Any] | None:
        """``container inspect``: the container's record, or None when it does not exist."""
        return self._inspect("container", name)

    def _inspect(self, kind: str, reference: str) -> dict[str, Any] | None:
        result = self.call([kind, "inspect", reference], timeout=60, check=False)
        if result.returncode != 0:
            if any(marker in result.stderr.lower() for marker in MISSING_MARKERS):
                return None
            raise self._error([self.binary, kind, "inspect", reference], result)
        records: list[dict[str, Any]] = json.loads(result.stdout)
        return records[0] if records else None


# -- finding the engine ----------------------------------------------------------------------


def settings_dir(environ: Mapping[str, str]) -> Path:
    """Where ``scripts/containers.sh`` writes podman's settings (the same default as the script)."""
    if environ.get(SETTINGS_VARIABLE):
        return Path(environ[SETTINGS_VARIABLE])
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(cache) / "mlops-containers"


def podman_engine(binary: str, environ: Mapping[str, str]) -> ContainerEngine:
    """Podman with the settings of ``scripts/containers.sh``, unless the environment names its own."""
    # Rootful podman's network plugins run iptables, found on PATH: a job's PATH may lack sbin.
    path = environ.get("PATH") or os.defpath
    missing = [folder for folder in ("/usr/sbin", "/sbin") if folder not in path.split(os.pathsep)]
    env = {"PATH": os.pathsep.join([path, *missing])} if missing else {}
    if environ.get("CONTAINERS_CONF"):
        env.update({key: environ[key] for key in PODMAN_SETTINGS if environ.get(key)})
        return ContainerEngine("podman", binary, env, hint=f"check the settings CONTAINERS_CONF names, or {SETUP_HINT}")
    folder = settings_dir(environ)
    if (folder / "containers.conf").is_file():
        env.update(
            CONTAINERS_CONF=str(folder / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(folder / "storage.conf"),
            TMPDIR=str(folder / "tmp"),
        )
        return ContainerEngine("podman", binary, env, hint=f"check the settings in {folder}, or {SETUP_HINT}")
    return ContainerEngine(
        "podman", binary, env, hint=f"podman runs with its defaults: there are no settings in {folder}; {SETUP_HINT}"
    )


def docker_problem(binary: str, environ: Mapping[str, str]) -> str | None:
    """Why the docker CLI at ``binary`` cannot be used (its daemon does not answer), or None."""
    try:
        result = subprocess.run(
            [binary, "version", "--format", "{{.Server.Version}}"],
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if result.returncode == 0 and result.stdout.strip():
        return None
    return (result.stderr.strip() or "no server version").splitlines()[-1]


def find_engine(environ: Mapping[str, str] | None = None) -> ContainerEngine:
    """
    The container engine to use here (see the module docstring for the order).

    :param environ: the environment to read (default: this process's).
    :raises ContainerEngineError: no engine can be used, with what was tried and the fix.
    """
    environ = os.environ if environ is None else environ
    path = environ.get("PATH")
    choice = environ.get(ENGINE_VARIABLE, "").strip()
    if choice:
        binary = shutil.which(choice, path=path)
        name = Path(choice).name
        if binary is None or name not in ("docker", "podman"):
            raise ContainerEngineError(
                f"{ENGINE_VARIABLE} is {choice!r}, which is {'not on PATH' if binary is None else 'neither docker nor podman'}; "
                f"allowed: docker, podman, or the path of either CLI. Fix: install it ({SETUP_HINT}), or unset {ENGINE_VARIABLE}"
            )
        return podman_engine(binary, environ) if name == "podman" else ContainerEngine("docker", binary)
    tried = []
    docker = shutil.which("docker", path=path)
    if docker:
        problem = docker_problem(docker, environ)
        if problem is None:
            return ContainerEngine("docker", docker)
        tried.append(f"docker ({docker}) has no daemon that answers: {problem}")
    else:
        tried.append("docker is not installed")
    podman = shutil.which("podman", path=path)
    if podman:
        return podman_engine(podman, environ)
    tried.append("podman is not installed")
    raise ContainerEngineError(f"no container engine can run here: {'; '.join(tried)}. Fix: start Docker, or {SETUP_HINT}")


def main(argv: Sequence[str]) -> int:
    """``env``: print the engine as shell exports: MLOPS_DOCKER=<its CLI> and the settings it needs."""
    if list(argv) != ["env"]:
        print("usage: python -m airflow_provider_mlops.engine env", file=sys.stderr)
        return 2
    try:
        engine = find_engine()
    except ContainerEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, value in {"MLOPS_DOCKER": engine.binary, **engine.env}.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
