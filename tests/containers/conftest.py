"""
Fixtures of the container tests: a real engine (docker when its daemon answers, else podman set up
by scripts/containers.sh), the provider's wheel, and the example model's image built for real.

Nothing here skips: when no engine can run, the session fixture fails with the script's output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from container_testenv import EXAMPLE, REPO, exports

from airflow_provider_mlops.engine import ContainerEngine, find_engine

TEST_IMAGE = "localhost/mlops-tests/breast-cancer:latest"
# Seconds: the first run installs podman and builds the Debian base (minutes on 2 shared cores).
SETUP_TIMEOUT = 1200
BUILD_TIMEOUT = 1200


@pytest.fixture(scope="session")
def engine_env() -> dict[str, str]:
    """The environment scripts/containers.sh asks for (empty when docker answers)."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "containers.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"scripts/containers.sh failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return exports(result.stdout)


@pytest.fixture(scope="session")
def engine(engine_env: dict[str, str]) -> ContainerEngine:
    return find_engine({**os.environ, **engine_env})


@pytest.fixture(scope="session")
def provider_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The provider's wheel, built from this checkout by scripts/containers.sh wheel."""
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "containers.sh"), "wheel", str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    wheels = list(out.glob("airflow_provider_mlops-*.whl"))
    assert len(wheels) == 1 and result.stdout.strip() == str(wheels[0]), (wheels, result.stdout)
    return wheels[0]


def build_context(tmp: Path, wheel: Path) -> Path:
    """The example as a model repository holds it, plus mlops-wheels/ (what package.sh adds)."""
    context = tmp / "context"
    shutil.copytree(EXAMPLE, context, ignore=shutil.ignore_patterns("__pycache__", "mlops-wheels", "model", "output"))
    (context / "mlops-wheels").mkdir()
    shutil.copy2(wheel, context / "mlops-wheels")
    return context


@pytest.fixture(scope="session")
def example_image(engine: ContainerEngine, provider_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example's image, built once per session with the engine module (the older build is removed)."""
    previous = engine.image(TEST_IMAGE)
    context = build_context(tmp_path_factory.mktemp("image"), provider_wheel)
    image_id = engine.build(context, tags=[TEST_IMAGE], timeout=BUILD_TIMEOUT)
    if previous is not None and not image_id.endswith(previous["Id"].removeprefix("sha256:")):
        engine.call(["rmi", previous["Id"]], timeout=120, check=False)  # still used elsewhere: kept
    return TEST_IMAGE


@pytest.fixture
def container_name(engine: ContainerEngine) -> Iterator[Callable[[str], str]]:
    """Unique container names; every container named here is removed after the test, also on failure."""
    names: list[str] = []

    def make(purpose: str) -> str:
        names.append(f"mlops-test-{purpose}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        engine.remove(name)
