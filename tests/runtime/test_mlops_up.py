"""
``mlops up examples/breast-cancer``: the local runtime a user starts for their own model.

The command runs as a user runs it (a subprocess, SQLite, its own home); the test trains the
example through the api-server, approves the deploy with ``mlops approve`` (the HITL REST path
the UI uses), calls the endpoint, then presses Ctrl-C (SIGINT) and checks that every process
the command started is gone. Everything a person does goes through the UI in Chromium: log in,
press Trigger on the train DAG, then on the deploy DAG, and Approve on its Required Action.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import ui
from runtime_env import GROUP, REPO, invoke

from airflow_provider_mlops.airflow_api import AirflowClient, free_port

pytestmark = pytest.mark.runtime
DAG = "mlops__demo__breast-cancer__{}"


def _wait_run(client: AirflowClient, dag: str, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get_dag_run(dag, run_id)["state"]
        if state in ("success", "failed"):
            return str(state)
        time.sleep(1)
    raise AssertionError(f"{dag} {run_id} did not finish in {timeout}s")


def test_mlops_up_trains_approves_deploys_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    home, port = tmp_path / "up", free_port()
    mlops = str(Path(sys.executable).with_name("mlops"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([mlops, "up", str(REPO / "examples" / "breast-cancer"), "--home", str(home),
                                    "--port", str(port)], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "Airflow is up" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-4000:]
            time.sleep(1)
        printed = log.read_text()
        assert f"http://127.0.0.1:{port}" in printed, printed[-4000:]
        password = (home / "admin-password").read_text().strip()
        assert f"admin / {password}" in printed
        client = AirflowClient(f"http://127.0.0.1:{port}", "admin", password, timeout=30)

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                client.request("GET", f"/api/v2/dags/{DAG.format('deploy')}")
                break
            except Exception:
                time.sleep(1)
        with ui(f"http://127.0.0.1:{port}", password, tmp_path / "screenshots") as page:
            train_run = page.trigger(DAG.format("train"))
            assert _wait_run(client, DAG.format("train"), train_run) == "success"
            deploy_run = page.trigger(DAG.format("deploy"))
            deadline = time.monotonic() + 120
            while not client.pending_approvals(DAG.format("deploy")) and time.monotonic() < deadline:
                time.sleep(1)
            page.approve(DAG.format("deploy"), deploy_run, expect="1.0.0")
            assert _wait_run(client, DAG.format("deploy"), deploy_run) == "success"
        router = json.loads((home / "mlops" / "endpoints" / GROUP / "router.json").read_text())
        payload = (REPO / "examples" / "breast-cancer" / "smoke_payload.json").read_bytes()
        status, body = invoke(f"http://127.0.0.1:{router['port']}", payload)
        assert status == 200 and b"predictions" in body
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 0, log.read_text()[-3000:]
    assert "stopping Airflow" in log.read_text()
    # Every component ran in a process group of its own; none of them may outlive the command.
    leftovers = subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True, text=True).stdout.split()
    assert not leftovers, leftovers
    airflow_home = str(home / "airflow")
    survivors = [pid for pid in os.listdir("/proc") if pid.isdigit() and _environ_has(pid, airflow_home)]
    assert not survivors, f"processes of mlops up still running: {survivors}"


def _environ_has(pid: str, value: str) -> bool:
    try:
        return f"AIRFLOW_HOME={value}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
