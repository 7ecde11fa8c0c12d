"""Fixtures of the CI tests: the shared Airflow stack and moto server, script shims, a work dir."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "lambda"))
sys.path.insert(0, str(HERE.parent / "notifications"))  # notify_fakes: the loopback Slack and SNS

import trigger_testenv  # noqa: E402
from ci_testenv import base_env, make_shims  # noqa: E402
from notify_fakes import moto_server, moto_sns, slack_server  # noqa: E402, F401  (pytest fixtures)


@pytest.fixture(scope="session")
def airflow_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return trigger_testenv.shared_stack(tmp_path_factory, request.config.add_cleanup)


@pytest.fixture(scope="session")
def moto_url(request: pytest.FixtureRequest) -> str:
    return trigger_testenv.shared_moto(request.config.add_cleanup)


@pytest.fixture
def moto(moto_url: str) -> str:
    """The moto server, emptied for this test."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10)
    return moto_url


@pytest.fixture(scope="session")
def shims(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shims(tmp_path_factory.mktemp("shims"))


@pytest.fixture
def job(tmp_path: Path, shims: Path):
    """A job's working directory and environment (add AWS with ``aws_env``)."""
    workdir = tmp_path / "job"
    workdir.mkdir()
    return workdir, base_env(shims, tmp_path)
