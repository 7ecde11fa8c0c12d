"""
The engine module (airflow_provider_mlops/engine.py) and scripts/containers.sh, against the real
engine of this machine: which CLI is chosen, what its errors say, timeouts, and the settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from container_testenv import EXAMPLE, REPO, exports

from airflow_provider_mlops.engine import (
    ContainerEngine,
    ContainerEngineError,
    ContainerTimeoutError,
    Mount,
    find_engine,
)

pytestmark = pytest.mark.timeout(1800)  # the session fixture may install podman and build the base
BASE_IMAGE = "docker.io/library/python:3.11-slim"


def docker_without_daemon(folder: Path) -> dict[str, str]:
    """A PATH whose docker CLI has no daemon: the real CLI pointed at a socket nobody serves."""
    folder.mkdir()
    real = subprocess.run(["sh", "-c", "command -v docker"], capture_output=True, text=True, check=False).stdout.strip()
    if real:
        (folder / "docker").symlink_to(real)
    else:  # no docker CLI on this machine: a stand-in that answers as the CLI does without a daemon
        (folder / "docker").write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
        (folder / "docker").chmod(0o755)
    return {"PATH": str(folder), "DOCKER_HOST": f"unix://{folder}/no-daemon.sock", "HOME": os.environ["HOME"]}


def test_a_docker_cli_without_a_daemon_is_passed_over_for_podman(engine_env, tmp_path: Path) -> None:
    env = docker_without_daemon(tmp_path / "bin")
    env["PATH"] += os.pathsep + "/usr/bin:/bin"
    engine = find_engine({**env, **engine_env})
    assert engine.name == "podman", engine
    assert engine.env["CONTAINERS_CONF"] == engine_env["CONTAINERS_CONF"]
    # Without the sbin folders podman's network plugins cannot find iptables (`--publish` fails).
    assert engine.env["PATH"].split(os.pathsep)[-2:] == ["/usr/sbin", "/sbin"]


def test_no_engine_says_what_was_tried_and_how_to_fix_it(tmp_path: Path) -> None:
    env = docker_without_daemon(tmp_path / "bin")
    with pytest.raises(ContainerEngineError) as caught:
        find_engine(env)
    message = str(caught.value)
    assert "has no daemon that answers" in message and "podman is not installed" in message
    assert "scripts/containers.sh" in message


def test_the_engine_variable_names_docker_or_podman_only(tmp_path: Path) -> None:
    with pytest.raises(ContainerEngineError, match="MLOPS_CONTAINER_ENGINE is 'nerdctl'.*allowed: docker, podman"):
        find_engine({"PATH": "/usr/bin:/bin", "MLOPS_CONTAINER_ENGINE": "nerdctl"})


def test_the_module_finds_the_settings_the_script_writes_without_exported_variables(engine_env) -> None:
    if not engine_env:
        pytest.fail("docker answers here: this test checks podman's settings; run it with MLOPS_CONTAINER_ENGINE=podman")
    env = {k: v for k, v in os.environ.items() if k not in engine_env}
    script = subprocess.run(
        ["bash", str(REPO / "scripts" / "containers.sh"), "env"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    module = subprocess.run(
        [sys.executable, "-m", "airflow_provider_mlops.engine", "env"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    found = exports(module.stdout)
    assert found.pop("MLOPS_DOCKER").endswith("/podman")
    found.pop("PATH", None)  # the sbin folders, when this PATH lacks them
    assert found == exports(script.stdout) == engine_env


def test_a_container_past_its_timeout_is_stopped_and_removed(engine: ContainerEngine, engine_env, container_name) -> None:
    name = container_name("timeout")
    with pytest.raises(ContainerTimeoutError, match=f"container {name} .* ran past its timeout of 3 s and was stopped"):
        engine.run(BASE_IMAGE, ["sleep", "600"], name=name, timeout=3)
    assert engine.container(name) is None
    assert engine.stop(name) is None  # stopping or removing what is gone is no error
    engine.remove(name)


def test_environment_values_reach_the_container_but_never_the_command_line(engine: ContainerEngine, container_name) -> None:
    secret = f"token-{uuid.uuid4().hex}"
    result = engine.run(BASE_IMAGE, ["printenv", "MLOPS_TEST_TOKEN"], name=container_name("env"), timeout=120,
                        env={"MLOPS_TEST_TOKEN": secret})
    assert result.exit_code == 0 and result.logs.strip() == secret
    with pytest.raises(ContainerEngineError) as caught:  # an image that does not exist (and cannot be pulled)
        engine.run("localhost/mlops-tests/no-such-image:1", ["true"], name=container_name("env-missing"), timeout=120,
                   env={"MLOPS_TEST_TOKEN": secret})
    assert "--env MLOPS_TEST_TOKEN " in str(caught.value) and secret not in str(caught.value)


def test_a_missing_mount_source_is_named(engine: ContainerEngine, tmp_path: Path, container_name) -> None:
    with pytest.raises(ContainerEngineError, match=f"mount source {tmp_path / 'nope'} \\(for /opt/ml/model\\) does not exist"):
        engine.start(BASE_IMAGE, ["true"], name=container_name("mount"), mounts=[Mount(tmp_path / "nope", "/opt/ml/model")])


def test_the_example_dockerfile_is_clean_for_hadolint() -> None:
    hadolint = REPO / ".venv-tools" / "bin" / "hadolint"
    assert hadolint.is_file(), "hadolint is installed by `bash scripts/check_infra.sh` (into .venv-tools): run it first"
    result = subprocess.run([str(hadolint), str(EXAMPLE / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
