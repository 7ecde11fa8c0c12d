"""
A small client for Airflow 3's public REST API v2, and a launcher for a loopback api-server.

The CLI's ``approve``/``reject`` answer human-in-the-loop requests through this client, so
the Airflow UI and the CLI stay one path. The launcher runs a real ``airflow api-server`` with
the simple auth manager, for the local demo and the end-to-end tests.

Standard library only: no Airflow import, so the CLI stays fast.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_mlops.exceptions import MlopsError


class AirflowApiError(MlopsError):
    """The Airflow REST API answered with an error status."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"Airflow API {method} {url} answered {status}: {body[:500]}")


@dataclass
class AirflowClient:
    """
    A token-authenticated client of the Airflow REST API v2.

    :param base_url: the api-server's address, for example ``http://127.0.0.1:8080``.
    :param username: the user to exchange for a token at ``/auth/token``.
    :param password: that user's password. Never logged.
    :param token: a ready JWT; when given, username and password are not used.
    """

    base_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AirflowClient:
        """Build a client from ``MLOPS_AIRFLOW_API_URL`` and ``..._USERNAME/_PASSWORD`` or ``..._TOKEN``."""
        url = env.get("MLOPS_AIRFLOW_API_URL")
        if not url:
            raise MlopsError(
                "MLOPS_AIRFLOW_API_URL is not set: the CLI needs the Airflow api-server's address "
                "(for example http://127.0.0.1:8080) for approve, reject, retrain, rollback and promote. Set it, with "
                "MLOPS_AIRFLOW_USERNAME and MLOPS_AIRFLOW_PASSWORD, or MLOPS_AIRFLOW_TOKEN."
            )
        return cls(
            base_url=url.rstrip("/"),
            username=env.get("MLOPS_AIRFLOW_USERNAME"),
            password=env.get("MLOPS_AIRFLOW_PASSWORD"),
            token=env.get("MLOPS_AIRFLOW_TOKEN"),
        )

    def _raw(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        url = f"{self.base_url}{path}"
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.get_token()}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            raise AirflowApiError(method, url, exc.code, text) from None

    def get_token(self) -> str:
        if self.token is None:
            if not self.username or self.password is None:
                raise MlopsError("no Airflow API credentials: set a username and password, or a token")
            _, payload = self._raw(
                "POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False
            )
            self.token = payload["access_token"]
        return self.token

    def request(self, method: str, path: str, body: Any = None) -> Any:
        return self._raw(method, path, body)[1]

    def trigger_dag_run(self, dag_id: str, run_id: str, conf: Mapping[str, Any]) -> dict[str, Any]:
        """Create a DAG run; a run with the same id already existing raises ``AirflowApiError`` 409."""
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf)}
        return self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", body)

    def get_dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", {"is_paused": False})

    def pending_approvals(self, dag_id: str = "~") -> list[dict[str, Any]]:
        """Human-in-the-loop requests of ``dag_id`` (or every DAG) that still wait for a response."""
        query = urllib.parse.urlencode({"response_received": "false"})
        payload = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/~/hitlDetails?{query}")
        return list(payload.get("hitl_details", []))

    def respond(
        self, dag_id: str, run_id: str, task_id: str, option: str, map_index: int = -1,
        params_input: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """
        Answer a human-in-the-loop request with one of its options (``Approve`` or ``Reject``).

        :param params_input: the form's fields (the approval's ``reason``), as the UI sends them.
            The api-server answers 403 when the request has ``assigned_users`` and this user is
            not one of them, and 409 when it was answered already.
        """
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/"
            f"{_q(task_id)}/{map_index}/hitlDetails"
        )
        body: dict[str, Any] = {"chosen_options": [option]}
        if params_input is not None:
            body["params_input"] = dict(params_input)
        return self.request("PATCH", path, body)

    def whoami(self) -> tuple[str, str]:
        """
        The authenticated user as ``(id, name)``, as Airflow's auth manager sees them.

        Asks the api-server (``GET /ui/auth/me``, what the UI uses), so the identity is the one
        the credentials prove, never a name the caller typed; an api-server without that route
        gives the token's ``sub`` claim.
        """
        try:
            me = self.request("GET", "/ui/auth/me")
            return str(me["id"]), str(me.get("username") or me["id"])
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
        claims = _jwt_claims(self.get_token())
        subject = str(claims.get("sub") or "")
        if not subject:
            raise MlopsError("the Airflow token names no user (no 'sub' claim); log in with a username and password")
        return subject, self.username or subject


def _jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified: the api-server verifies the token on every call that uses it."""
    import base64

    try:
        payload = token.split(".")[1]
        return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    except (IndexError, ValueError) as exc:
        raise MlopsError(f"MLOPS_AIRFLOW_TOKEN is not a JWT ({exc})") from None


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="~")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ApiServer:
    """A running loopback ``airflow api-server``; see :func:`run_api_server`."""

    base_url: str
    username: str
    password: str = field(repr=False)
    process: subprocess.Popen[bytes]
    log_path: Path
    passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def client(self, username: str | None = None) -> AirflowClient:
        """A client logged in as ``username`` (default: the first user)."""
        name = username or self.username
        return AirflowClient(self.base_url, name, self.passwords.get(name, self.password))


def api_server_env(airflow_home: Path, base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    The environment a loopback api-server (and the processes sharing its DB) needs.

    The JWT secret is generated once per ``airflow_home`` and kept in a file there, so the
    api-server and ``dag.test()`` in another process agree on it.
    """
    env = dict(os.environ if base_env is None else base_env)
    airflow_home.mkdir(parents=True, exist_ok=True)
    secret_file = airflow_home / "mlops_api_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_hex(32))
        secret_file.chmod(0o600)
    secret = secret_file.read_text().strip()
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secret)
    env.setdefault("AIRFLOW__API__SECRET_KEY", secret)
    return env


@contextmanager
def run_api_server(
    airflow_home: Path,
    *,
    env: Mapping[str, str] | None = None,
    username: str = "admin",
    startup_timeout: float = 90.0,
    other_users: tuple[str, ...] = (),
) -> Iterator[ApiServer]:
    """
    Start ``airflow api-server`` on a free 127.0.0.1 port with the simple auth manager.

    Passwords are random, written to the simple auth manager's password file with mode 0600,
    and never printed. The server is stopped when the context exits.

    :param other_users: more users (each an admin, like ``username``).
    """
    passwords = {name: secrets.token_urlsafe(16) for name in (username, *other_users)}
    password = passwords[username]
    passwords_file = airflow_home / "simple_auth_manager_passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    passwords_file.chmod(0o600)
    port = free_port()
    server_env = api_server_env(airflow_home, env)
    server_env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:admin" for name in passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    log_path = airflow_home / "api-server.log"
    airflow_bin = Path(sys.executable).with_name("airflow")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(airflow_bin), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", username, password, process, log_path, passwords)
    try:
        _wait_healthy(server, startup_timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_healthy(server: ApiServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise MlopsError(
                f"airflow api-server exited with code {server.process.returncode}; see {server.log_path}"
            )
        try:
            with urllib.request.urlopen(f"{server.base_url}/api/v2/monitor/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    raise MlopsError(f"airflow api-server did not answer within {timeout:.0f}s; see {server.log_path}")
