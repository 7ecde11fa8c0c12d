"""
A local Airflow runtime, the way production runs it: ``airflow scheduler``, ``dag-processor``,
``triggerer`` and ``api-server`` as separate processes (LocalExecutor), on SQLite or on a
throw-away PostgreSQL cluster.

``mlops up`` and the real-runtime test suite (``tests/runtime``) both start it::

    with LocalAirflow(home, dags_folder=Path("dags"), config_paths=[Path("examples")]) as airflow:
        print(airflow.base_url, airflow.username, airflow.password)

Every component runs in its own process group and is stopped by group (SIGTERM, then SIGKILL
after a timeout): LocalExecutor's worker processes outlive a killed scheduler otherwise. A
component that dies or does not report healthy in time raises :class:`RuntimeStartError` with
the last lines of every component's log.

Standard library only, so the CLI stays fast; Airflow runs in the child processes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_mlops.airflow_api import AirflowClient, api_server_env, free_port
from airflow_provider_mlops.exceptions import MlopsError

COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
#: What /api/v2/monitor/health calls each component.
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ROLES = ("viewer", "user", "op", "admin")


class RuntimeStartError(MlopsError):
    """A component of the local runtime (or its database) did not start."""


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """
    SIGTERM the process's group, then SIGKILL whatever is left of it after ``timeout``.

    The process must have been started with ``start_new_session=True``: its group id is its pid,
    which stays valid for the group's other members after the leader itself has exited.
    """
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers that ignored SIGTERM, or a hung component
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The folder with ``initdb`` and ``pg_ctl`` (Debian keeps them under /usr/lib/postgresql)."""
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    raise RuntimeStartError(
        "PostgreSQL is not installed: initdb and pg_ctl were not found. On Debian: apt-get install -y postgresql"
    )


@dataclass
class PostgresCluster:
    """
    A throw-away PostgreSQL cluster on a free 127.0.0.1 port, in a temporary folder.

    As root (CI), the server runs as the ``postgres`` user that Debian's package creates, since
    PostgreSQL refuses to run as root. The folder is removed by :meth:`stop`.
    """

    port: int = 0
    database: str = "airflow"
    user: str = "airflow"
    data_dir: Path | None = None
    _root: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeStartError(
                "running as root needs the 'postgres' user to own the cluster; apt-get install -y postgresql creates it"
            ) from None
        return ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run([*self._as_owner(), *args], capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeStartError(f"{' '.join(args[:2])} failed ({result.returncode}): {result.stderr[-2000:]}")

    def start(self) -> PostgresCluster:
        bindir = postgres_bindir()
        self._root = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self._root.chmod(0o755)
        self.data_dir = self._root / "data"
        if os.geteuid() == 0:
            self._as_owner()
            shutil.chown(self._root, "postgres", "postgres")
        self.port = self.port or free_port()
        self._run(str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._root} -c fsync=off -c max_connections=200"
        self._run(str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-o", options, "-l", str(self._root / "server.log"),
                  "-w", "-t", "60", "start")
        self._run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
        return self

    def stop(self) -> None:
        if self.data_dir is not None and self.data_dir.exists():
            bindir = postgres_bindir()
            try:
                self._run(str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)
            except (RuntimeStartError, subprocess.TimeoutExpired):
                pid_file = self.data_dir / "postmaster.pid"
                if pid_file.exists():
                    with suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


# --- Airflow ----------------------------------------------------------------------------------


@dataclass
class LocalAirflow:
    """
    Airflow's four long-running components on one metadata DB, for local use and tests.

    :param home: ``AIRFLOW_HOME``: airflow.cfg, component logs, task logs, and SQLite's DB.
    :param dags_folder: the folder with the loader files (this repository's ``dags/``).
    :param config_paths: folders of ``mlops.yaml`` files (``MLOPS_CONFIG_PATH``).
    :param mlops_home: ``MLOPS_HOME``: the local registry, jobs and endpoints.
    :param database_url: a SQLAlchemy URL; default SQLite in ``home``.
    :param port: the api-server's port on 127.0.0.1 (default: a free one).
    :param users: user name -> simple auth manager role (viewer, user, op, admin).
    :param parallelism: LocalExecutor's worker slots.
    :param extra_env: more variables for every component (connections, MLOPS_* settings).
    """

    home: Path
    dags_folder: Path
    config_paths: Sequence[Path]
    mlops_home: Path
    database_url: str | None = None
    port: int = 0
    users: Mapping[str, str] = field(default_factory=lambda: {"admin": "admin"})
    parallelism: int = 4
    extra_env: Mapping[str, str] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def username(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.passwords[self.username]

    def log_path(self, component: str) -> Path:
        return self.home / "component-logs" / f"{component}.log"

    def client(self, username: str | None = None) -> AirflowClient:
        name = username or self.username
        return AirflowClient(self.base_url, name, self.passwords[name], timeout=30)

    def env(self) -> dict[str, str]:
        """The environment every component (and an ``airflow`` command beside them) runs with."""
        bindir = str(Path(sys.executable).parent)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        base["PATH"] = os.pathsep.join([bindir, base.get("PATH", "/usr/bin:/bin")])
        env = api_server_env(self.home, base)
        db = self.database_url or f"sqlite:///{self.home / 'airflow.db'}"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
                "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in self.users.items()),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "simple_auth_manager_passwords.json"),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                # New configs show up within seconds instead of the default 30 s.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "MLOPS_CONFIG_PATH": os.pathsep.join(str(p) for p in self.config_paths),
                "MLOPS_HOME": str(self.mlops_home),
            }
        )
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run one ``airflow`` command with this runtime's settings; its output, or a clear error."""
        airflow_bin = str(Path(sys.executable).with_name("airflow"))
        result = subprocess.run([airflow_bin, *args], env=self.env(), capture_output=True, text=True,
                                timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise RuntimeStartError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self, timeout: float = 240) -> LocalAirflow:
        """Migrate the DB, start the four components and wait until the api-server reports each healthy."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.mlops_home.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        for name in self.users:
            if self.users[name] not in ROLES:
                raise MlopsError(f"user {name}: role {self.users[name]!r} is not one of {', '.join(ROLES)}")
            self.passwords.setdefault(name, secrets.token_urlsafe(12))
        passwords_file = self.home / "simple_auth_manager_passwords.json"
        passwords_file.write_text(json.dumps(self.passwords))
        passwords_file.chmod(0o600)
        self.airflow("db", "migrate")
        (self.home / "component-logs").mkdir(exist_ok=True)
        env = self.env()
        airflow_bin = str(Path(sys.executable).with_name("airflow"))
        commands = {
            "api-server": [airflow_bin, "api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": [airflow_bin, "scheduler"],
            "dag-processor": [airflow_bin, "dag-processor"],
            "triggerer": [airflow_bin, "triggerer"],
        }
        try:
            for component in COMPONENTS:
                with open(self.log_path(component), "wb") as log:
                    self.processes[component] = subprocess.Popen(
                        commands[component], env=env, stdout=log, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, start_new_session=True,
                    )
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/api/v2/monitor/health", timeout=5) as response:
            return dict(json.loads(response.read()))

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = "no answer yet"
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.health()
                if all((last.get(key) or {}).get("status") == "healthy" for key in HEALTH_KEYS.values()):
                    return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = exc
            time.sleep(1)
        raise RuntimeStartError(f"the local Airflow was not healthy within {timeout:.0f}s (last health: {last})\n"
                                + self.describe_logs())

    def check_alive(self) -> None:
        """Raise with every component's log tail if one of them has exited."""
        for component, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeStartError(f"airflow {component} exited with code {process.returncode}\n" + self.describe_logs())

    def describe_logs(self, lines: int = 25) -> str:
        return "\n".join(f"--- {c} ({self.log_path(c)}):\n{tail(self.log_path(c), lines)}" for c in COMPONENTS)

    def stop(self) -> None:
        """Stop every component by process group; safe to call twice."""
        # The scheduler first, so no new task starts while the others go.
        for component in ("scheduler", "triggerer", "dag-processor", "api-server"):
            process = self.processes.pop(component, None)
            if process is not None:
                stop_process_group(process)

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def local_runtime(
    home: Path,
    *,
    dags_folder: Path,
    config_paths: Sequence[Path],
    mlops_home: Path,
    postgres: bool = False,
    **kwargs: Any,
) -> Iterator[LocalAirflow]:
    """A :class:`LocalAirflow`, with its own PostgreSQL cluster when ``postgres`` is true; both stopped on exit."""
    cluster = PostgresCluster().start() if postgres else None
    try:
        runtime = LocalAirflow(home, dags_folder, config_paths, mlops_home,
                               database_url=cluster.url if cluster else None, **kwargs)
        with runtime:
            yield runtime
    finally:
        if cluster is not None:
            cluster.stop()
