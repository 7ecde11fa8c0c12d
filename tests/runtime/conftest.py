"""
Fixtures of the real-runtime suite: one world (PostgreSQL, Airflow's four components, moto, a
loopback Slack and GitLab) for the whole session, and the installs it needs.

PostgreSQL and Chromium are Debian packages; ``scripts/test.sh`` installs them when missing (CI
runs as root on a fresh machine). A missing one fails the suite: it never skips.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_env import TIMINGS, World, start_world

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # A SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so every component is still stopped.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with start_world(tmp_path_factory.mktemp("runtime")) as started:
            yield started
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("real-runtime scenario: seconds per step")
        for step, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:8.1f}  {step}")
