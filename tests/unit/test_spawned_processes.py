"""
Long-lived processes the product spawns hold nothing of the task that started them.

Under a real scheduler a task's stdin is a socket to its supervisor, which waits for every copy
of it to close: a model server that inherited it held the worker slot 60 s after the deploy task
succeeded ("Process exited with open sockets"). Here the test process's fd 0 is a socket while
the product code starts a router, a model server and a local job, and /proc shows what each
child holds.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from airflow_provider_mlops.backends.base import JobSpec
from airflow_provider_mlops.backends.local import LocalComputeBackend
from airflow_provider_mlops.serving.local import LocalServing

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/<pid>/fd (Linux)")

INFERENCE = """
def model_fn(model_dir):
    return {}

def predict_fn(data, model):
    return data
"""


@contextmanager
def _socket_as_stdin() -> Iterator[str]:
    """Make fd 0 an inheritable socket, as a task's stdin is under the supervisor; yield its /proc name."""
    ours, theirs = socket.socketpair()
    saved = os.dup(0)
    try:
        os.dup2(ours.fileno(), 0, inheritable=True)
        yield f"socket:[{os.fstat(0).st_ino}]"
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        ours.close()
        theirs.close()


def _fds(pid: int) -> dict[str, str]:
    folder = Path(f"/proc/{pid}/fd")
    out = {}
    for fd in folder.iterdir():
        try:
            out[fd.name] = os.readlink(fd)
        except FileNotFoundError:  # closed while we read
            continue
    return out


def _assert_detached(pid: int, task_socket: str, what: str) -> None:
    fds = _fds(pid)
    assert fds.get("0") == "/dev/null", f"{what}: stdin is {fds.get('0')}, not /dev/null"
    assert task_socket not in fds.values(), f"{what} holds the task's socket: {fds}"
    assert os.getsid(pid) == pid, f"{what} must lead a session of its own"


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_endpoint_router_and_model_server_inherit_no_socket_and_read_dev_null(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(INFERENCE)
    model = tmp_path / "model"
    model.mkdir()
    serving = LocalServing(tmp_path / "home", drain_seconds=0)
    try:
        with _socket_as_stdin() as task_socket:
            serving.deploy_model("ep", version="1.0.0", model_dir=str(model), code_dir=str(code), health_timeout=60)
        state = serving.state_dir("ep")
        router_pid = json.loads((state / "router.json").read_text())["pid"]
        server_pid = json.loads((state / "current.json").read_text())["pid"]
        _assert_detached(router_pid, task_socket, "the endpoint router")
        _assert_detached(server_pid, task_socket, "the model server")
        assert (state / "router.log").exists() and list(state.glob("servers/*/server.log"))
    finally:
        serving.stop("ep")


def test_a_local_job_and_its_entrypoint_inherit_no_socket_and_read_dev_null(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("import time\ntime.sleep(30)\n")
    backend = LocalComputeBackend(tmp_path / "home")
    spec = JobSpec(name="job-fds", kind="training", entrypoint="train.py", source_dir=str(code))
    try:
        with _socket_as_stdin() as task_socket:
            backend.submit(spec)
        runner = json.loads((backend.run_dir("job-fds") / "job.json").read_text())["pid"]
        _assert_detached(runner, task_socket, "the local job runner")
        deadline = time.monotonic() + 30
        while not _children(runner) and time.monotonic() < deadline:
            time.sleep(0.1)
        [entrypoint] = _children(runner)
        fds = _fds(entrypoint)
        assert fds.get("0") == "/dev/null" and task_socket not in fds.values(), fds
        assert fds.get("1", "").endswith("stdout.log"), "the entrypoint's output goes to the job's log"
    finally:
        backend.stop("job-fds")
