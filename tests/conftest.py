"""
Test-session setup shared by every test folder.

Airflow reads its configuration when it is first imported, so this file points it at a
throw-away AIRFLOW_HOME (SQLite) before any test imports it. The repository's dags/ folder is
the DAGS_FOLDER and examples/ the config path, so every example config is parsed as in
production. Nothing here reaches the network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
AIRFLOW_HOME = SESSION_DIR / "airflow"
AIRFLOW_HOME.mkdir()

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "MLOPS_CONFIG_PATH": str(REPO / "examples"),
        "MLOPS_HOME": str(SESSION_DIR / "mlops"),
        # Fixed per session, so an api-server started by a test accepts this process's tokens.
        "AIRFLOW__API_AUTH__JWT_SECRET": "mlops-tests-" + SESSION_DIR.name,
        "AIRFLOW__API__SECRET_KEY": "mlops-tests-" + SESSION_DIR.name,
    }
)
os.environ.pop("MLOPS_STRICT", None)
os.environ.pop("MLOPS_AIRFLOW_API_URL", None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB for this session (about 5 s, once)."""
    marker = AIRFLOW_HOME / ".migrated"
    if not marker.exists():
        airflow = str(Path(sys.executable).with_name("airflow"))
        result = subprocess.run([airflow, "db", "migrate"], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        marker.touch()
    return AIRFLOW_HOME


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh MLOps home (registry, jobs, endpoints); endpoints started in it are stopped after."""
    home = tmp_path / "mlops-home"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    yield home
    from airflow_provider_mlops.serving.local import LocalServing

    for state in (home / "endpoints").glob("*"):
        LocalServing(home).stop(state.name)


class TriggerLog(logging.Handler):
    """A trigger's own logger, recorded: what the triggerer writes to the task's trigger log."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.logger = logging.getLogger(name)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    async def until(self, text: str, timeout: float = 20) -> None:
        """Wait until a recorded message contains ``text``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not any(text in m for m in self.messages):
            assert time.monotonic() < deadline, f"{text!r} never reached the trigger log: {self.messages}"
            await asyncio.sleep(0.02)

    @staticmethod
    async def first_event(trigger: Any) -> dict[str, Any]:
        """The first event a trigger yields, as a dict."""
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")


@pytest.fixture
def trigger_log(request: pytest.FixtureRequest) -> Iterator[TriggerLog]:
    """A fresh recorded logger for one test's trigger (``trigger._log = trigger_log.logger``)."""
    recorder = TriggerLog(f"tests.trigger.{request.node.name}")
    try:
        yield recorder
    finally:
        recorder.logger.removeHandler(recorder)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from airflow_provider_mlops.serving.local import LocalServing

    for state in (SESSION_DIR / "mlops" / "endpoints").glob("*"):
        LocalServing(SESSION_DIR / "mlops").stop(state.name)
    shutil.rmtree(SESSION_DIR, ignore_errors=True)
