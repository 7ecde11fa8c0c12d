"""Fixtures of the trigger Lambda tests: a real Airflow api-server and a moto server, both on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trigger_testenv


@pytest.fixture(scope="session")
def airflow_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return trigger_testenv.shared_stack(tmp_path_factory, request.config.add_cleanup)


@pytest.fixture(scope="session")
def moto_url(request: pytest.FixtureRequest) -> str:
    return trigger_testenv.shared_moto(request.config.add_cleanup)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> Iterator[str]:
    """boto3 in this process talks to moto, with a clean moto state."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10)
    for key, value in trigger_testenv.aws_env(moto_url).items():
        monkeypatch.setenv(key, value)
    yield moto_url


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MLOPS_* variable from the outside leaks into the handler's settings."""
    import os

    for key in list(os.environ):
        if key.startswith("MLOPS_"):
            monkeypatch.delenv(key)
    return monkeypatch
