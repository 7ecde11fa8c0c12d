"""
The local endpoint under faults: a killed router, stale and corrupt state, a full disk.

Every test drives the product (LocalServing, the router and model-server processes it starts)
and checks processes by pid through /proc. Everything a test starts is stopped by pid in its
fixture, also when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from endpoint_models import INFERENCE, model_folder

from airflow_provider_mlops._proc import pid_alive
from airflow_provider_mlops.airflow_api import free_port
from airflow_provider_mlops.exceptions import DeploymentError
from airflow_provider_mlops.serving.local import LocalServing, invoke


def process_cmdline(pid: int) -> list[str] | None:
    try:
        return [p.decode() for p in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if p] or None
    except OSError:
        return None


def _pids_mentioning(text: str) -> list[int]:
    """Running processes whose command line names ``text`` (a test's own folder)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        argv = process_cmdline(int(entry.name))
        if argv and any(text in part for part in argv) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _kill_leftovers(text: str) -> None:
    for pid in _pids_mentioning(text):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, signal.SIGKILL)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), f"pid {pid} still runs after {timeout}s"


def _router_workers(supervisor: int) -> list[int]:
    """The router's serving processes: the supervisor's children that uvicorn spawned."""
    pids: list[int] = []
    for task in Path(f"/proc/{supervisor}/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return [p for p in pids if "spawn_main" in " ".join(process_cmdline(p) or [])]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LocalServing, Path, Path]]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(INFERENCE)
    serving = LocalServing(tmp_path / "home", drain_seconds=0.2)
    try:
        yield serving, code, tmp_path
    finally:
        try:
            serving.stop("ep")
        finally:
            _kill_leftovers(str(tmp_path))


def _state(serving: LocalServing, name: str) -> dict[str, object]:
    return json.loads((serving.state_dir("ep") / name).read_text())


def test_a_killed_router_worker_is_replaced_by_its_supervisor(served) -> None:
    serving, code, tmp = served
    url = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))["url"]
    supervisor = int(_state(serving, "router.json")["pid"])  # type: ignore[call-overload]
    [worker] = _router_workers(supervisor)
    os.kill(worker, signal.SIGKILL)
    deadline, answer = time.monotonic() + 20, None
    while time.monotonic() < deadline:  # a plain HTTP client, nothing of the product
        try:
            request = urllib.request.Request(f"{url}/invocations", data=b"[1]", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = (response.status, json.loads(response.read()))
                break
        except urllib.error.HTTPError as exc:
            answer = (exc.code, json.loads(exc.read()))
            break
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    assert answer == (200, {"version": "v1", "echo": [1]})
    assert pid_alive(supervisor) and _router_workers(supervisor) not in ([], [worker])


def test_a_killed_router_is_started_again_by_the_next_invoke(served) -> None:
    serving, code, tmp = served
    deployed = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))
    router = int(_state(serving, "router.json")["pid"])  # type: ignore[call-overload]
    os.killpg(router, signal.SIGKILL)  # the supervisor and its worker: nothing restarts them by itself
    _wait_gone(router)
    assert serving.status("ep")["router_running"] is False
    status, headers, body = serving.invoke(deployed, b"[2]", "application/json")
    assert status == 200 and json.loads(body) == {"version": "v1", "echo": [2]}
    again = serving.status("ep")
    assert again["router_running"] and again["url"] == deployed["url"] and again["router_pid"] != router


def test_mlops_endpoint_invoke_starts_a_dead_router_again(served) -> None:
    serving, code, tmp = served
    deployed = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))
    router = int(_state(serving, "router.json")["pid"])  # type: ignore[call-overload]
    os.killpg(router, signal.SIGKILL)
    _wait_gone(router)
    mlops = Path(sys.executable).with_name("mlops")
    done = subprocess.run([str(mlops), "endpoint", "invoke", "ep", "--home", str(serving.home), "--payload", "[3]"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("HTTP 200 from version 1.0.0") and '"echo": [3]' in done.stdout
    assert serving.status("ep")["url"] == deployed["url"]


def test_router_death_during_a_deploy_leaves_consistent_state_and_no_orphan(served) -> None:
    serving, code, tmp = served
    serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))
    old_server = int(_state(serving, "current.json")["pid"])  # type: ignore[call-overload]
    old_router = int(_state(serving, "router.json")["pid"])  # type: ignore[call-overload]
    killer = model_folder(tmp, "v2", kill_router=str(serving.state_dir("ep") / "router.json"))
    try:
        result = serving.deploy_model("ep", version="1.0.1", model_dir=killer, code_dir=str(code), health_timeout=30)
    except DeploymentError as exc:  # allowed: a clear error, with the old version's record intact
        assert "\n" not in str(exc)
        assert _state(serving, "current.json")["version"] == "1.0.0"
    else:
        assert result["version"] == "1.0.1"
        _wait_gone(old_router)
        current = _state(serving, "current.json")
        assert current["version"] == "1.0.1"
        status, headers, _ = invoke(result["url"], b"[3]")
        assert status == 200 and headers["X-Mlops-Model-Version"] == "1.0.1"
        _wait_gone(old_server)  # the replaced version does not linger
    servers = _pids_mentioning(str(serving.state_dir("ep") / "servers"))
    serving.stop("ep")
    for pid in [old_server, *servers]:
        _wait_gone(pid)
    assert not _pids_mentioning(str(serving.state_dir("ep")))


def _forget_stale(state: Path, stale: int) -> None:
    """Whatever happened, no stop() after this test may read ``stale`` from router.json and signal it."""
    try:
        if json.loads((state / "router.json").read_text()).get("pid") == stale:
            (state / "router.json").write_text("{}")
    except (OSError, ValueError):
        pass


def test_a_stale_router_pid_is_recognised_and_never_signalled(served) -> None:
    serving, code, tmp = served
    state = serving.state_dir("ep")
    bystander = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        for stale in (bystander.pid, 1):  # any process that got the pid, or pid 1 after a reboot
            state.mkdir(parents=True, exist_ok=True)
            port = free_port()
            (state / "router.json").write_text(json.dumps({"pid": stale, "port": port}))
            try:
                result = serving.deploy_model("ep", version="1.0.0", model_dir=str(_model_once(tmp)), code_dir=str(code))
                assert _state(serving, "router.json")["pid"] != stale
            finally:
                _forget_stale(state, stale)
            assert result["url"] == f"http://127.0.0.1:{port}"  # the recorded port is kept
            assert invoke(result["url"], b"[4]")[0] == 200
            serving.stop("ep")
            assert not _pids_mentioning(str(state))
            assert pid_alive(1) and bystander.poll() is None, "a stale pid was signalled"
    finally:
        bystander.kill()
        bystander.wait(timeout=10)


def _model_once(tmp: Path) -> Path:
    folder = tmp / "model-v1"
    if not folder.exists():
        model_folder(tmp, "v1")
    return folder


def test_a_corrupt_router_json_is_recovered_without_a_second_router(served) -> None:
    serving, code, tmp = served
    state = serving.state_dir("ep")
    state.mkdir(parents=True)
    (state / "router.json").write_text('{"pid": 12')  # torn before the first deploy
    first = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))
    router = int(_state(serving, "router.json")["pid"])  # type: ignore[call-overload]
    (state / "router.json").write_text("\x00\x00 not json")  # torn while the router runs
    assert serving.status("ep")["router_pid"] == router  # found by its command line
    second = serving.deploy_model("ep", version="1.0.1", model_dir=model_folder(tmp, "v2"), code_dir=str(code))
    assert second["url"] == first["url"] and _state(serving, "router.json")["pid"] == router
    assert invoke(second["url"], b"[5]")[1]["X-Mlops-Model-Version"] == "1.0.1"
    (state / "router.json").write_text("[]")
    serving.stop("ep")
    _wait_gone(router)
    assert not _pids_mentioning(str(state))


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (mounted as root, as CI runs these tests), unmounted after."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True, capture_output=True, timeout=30)
    try:
        yield mount
    finally:
        _kill_leftovers(str(mount))
        subprocess.run(["umount", "-l", str(mount)], check=True, capture_output=True, timeout=30)


def _fill(folder: Path) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_gives_a_clear_error_and_no_untracked_router(served, tiny_disk: Path) -> None:
    _, code, tmp = served
    serving = LocalServing(tiny_disk / "home", drain_seconds=0.2)
    serving.state_dir("ep").mkdir(parents=True)
    _fill(tiny_disk)
    with pytest.raises(DeploymentError, match=r"cannot write .*router\.json.*No space left on device.*free space"):
        serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code), health_timeout=30)
    assert not _pids_mentioning(str(tiny_disk)), "a process runs that no state file names"
    assert not (serving.state_dir("ep") / "router.json.tmp").exists()


def test_a_disk_that_fills_after_the_first_deploy_keeps_the_old_version(served, tiny_disk: Path) -> None:
    _, code, tmp = served
    serving = LocalServing(tiny_disk / "home", drain_seconds=0.2)
    try:
        url = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))["url"]
        _fill(tiny_disk)
        with pytest.raises(DeploymentError):
            serving.deploy_model("ep", version="1.0.1", model_dir=model_folder(tmp, "v2"), code_dir=str(code), health_timeout=30)
        assert invoke(url, b"[6]")[1]["X-Mlops-Model-Version"] == "1.0.0"
        assert _state(serving, "current.json")["version"] == "1.0.0"
        servers = _pids_mentioning(str(serving.state_dir("ep") / "servers"))
        assert len(servers) == 1 and servers[0] == _state(serving, "current.json")["pid"]
    finally:
        serving.stop("ep")
    assert not _pids_mentioning(str(tiny_disk))
