"""
docker-compose.yaml: the local Airflow 3.3 stack has the services it promises, mounts the
repository, points AWS at moto, and runs only commands the installed Airflow CLI has.

No Docker engine runs here, so each ``airflow ...`` the services run is checked by running it
with ``--help`` appended in the project venv: argparse parses the whole line (subcommands,
options, choices) before it prints help and exits 0. The compose spec and Compose's own loader
are checked by scripts/check_infra.sh.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
AIRFLOW_DOCKERFILE = REPO / "docker" / "airflow.Dockerfile"

AIRFLOW_SERVICES = {
    "airflow-init": ["db", "migrate"],
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
}


def load_compose() -> dict[str, Any]:
    with COMPOSE_FILE.open() as fh:
        return yaml.safe_load(fh)  # SafeLoader resolves the x-airflow-common merge keys


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def airflow_executable() -> Path:
    """The project venv's airflow: next to this interpreter, else under $VENV."""
    here = Path(sys.executable).parent / "airflow"
    if here.exists():
        return here
    return REPO / os.environ.get("VENV", ".venv") / "bin" / "airflow"


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def airflow_command_lines() -> list[tuple[str, list[str]]]:
    """Every ``airflow`` argv the stack runs: service commands and health checks."""
    found: list[tuple[str, list[str]]] = []
    for name, service in sorted(SERVICES.items()):
        if not name.startswith("airflow-"):
            continue
        argv = as_argv(service["command"])
        # The apache/airflow entrypoint runs `airflow <command>`; a leading "airflow" is optional.
        found.append((f"{name} command", argv[1:] if argv[:1] == ["airflow"] else argv))
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD-SHELL"]:
            shell = test[1].replace("$$", "$")
            for segment in re.split(r"&&|\|\||;|\|", shell):
                words = shlex.split(os.path.expandvars(segment.replace("${HOSTNAME}", "airflow-host")))
                if words[:1] == ["airflow"]:
                    found.append((f"{name} healthcheck", words[1:]))
        elif test[:2] == ["CMD", "airflow"]:
            found.append((f"{name} healthcheck", test[2:]))
    return found


COMMAND_LINES = airflow_command_lines()


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
    )
    return env


# --- structure ---------------------------------------------------------------------------------


def test_stack_has_postgres_moto_and_every_airflow_3_component() -> None:
    assert set(SERVICES) == {"postgres", *AIRFLOW_SERVICES, "moto"}
    for name, argv in AIRFLOW_SERVICES.items():
        assert as_argv(SERVICES[name]["command"]) == argv, name
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["airflow-apiserver"]["ports"] == ["8080:8080"]


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_services_run_this_package_with_dags_and_examples_mounted(name: str) -> None:
    service = SERVICES[name]
    assert service["build"] == {"context": ".", "dockerfile": "docker/airflow.Dockerfile"}
    mounts = {v.split(":")[0]: v.split(":")[1] for v in service["volumes"]}
    assert mounts["./dags"] == "/opt/airflow/dags"
    assert mounts["./examples"] == "/opt/airflow/examples"
    env = service["environment"]
    assert env["MLOPS_CONFIG_PATH"] == "/opt/airflow/examples"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_components_wait_for_the_migrated_database_and_moto() -> None:
    for name in set(AIRFLOW_SERVICES) - {"airflow-init"}:
        depends = SERVICES[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["moto"]["condition"] == "service_healthy", name
    assert set(SERVICES["airflow-init"]["depends_on"]) == {"postgres"}


def test_aws_connection_points_at_moto() -> None:
    env = SERVICES["airflow-scheduler"]["environment"]
    uri = urlsplit(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert uri.scheme == "aws"
    query = parse_qs(uri.query)
    assert query["endpoint_url"] == ["http://moto:5000"]
    assert env["AWS_ENDPOINT_URL"] == "http://moto:5000"
    assert "5000:5000" in SERVICES["moto"]["ports"]
    moto_dockerfile = (REPO / "docker" / SERVICES["moto"]["build"]["dockerfile"]).read_text()
    assert '"moto[server]==5.2.5"' in moto_dockerfile


def test_airflow_parses_the_aws_connection_uri(airflow_env: dict[str, str]) -> None:
    uri = SERVICES["airflow-scheduler"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"]
    script = (
        "import json, sys\n"
        "from airflow.models.connection import Connection\n"
        "c = Connection(conn_id='aws_default', uri=sys.argv[1])\n"
        "print(json.dumps({'type': c.conn_type, 'login': c.login, 'extra': c.extra_dejson}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, uri], env=airflow_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["type"] == "aws"
    assert parsed["extra"] == {"region_name": "eu-west-1", "endpoint_url": "http://moto:5000"}


def test_image_matches_the_airflow_this_package_supports() -> None:
    from importlib.metadata import version

    base = re.search(
        r"^FROM apache/airflow:(\d+\.\d+\.\d+)-python3\.11$", AIRFLOW_DOCKERFILE.read_text(), re.M
    )
    assert base, "docker/airflow.Dockerfile must build FROM apache/airflow:<version>-python3.11"
    installed = version("apache-airflow")
    assert base.group(1).split(".")[:2] == installed.split(".")[:2] == ["3", "3"]
    assert "[aws,slack,kubernetes,examples]" in AIRFLOW_DOCKERFILE.read_text()


# --- every airflow command exists in the installed CLI ---------------------------------------


def test_the_stack_runs_airflow_commands() -> None:
    kinds = {label.split()[-1] for label, _ in COMMAND_LINES}
    assert len(COMMAND_LINES) >= len(AIRFLOW_SERVICES) and kinds == {"command", "healthcheck"}


@pytest.mark.parametrize(
    "argv", [argv for _, argv in COMMAND_LINES], ids=[label for label, _ in COMMAND_LINES]
)
def test_airflow_command_exists_in_the_installed_cli(argv: list[str], airflow_env: dict[str, str]) -> None:
    airflow = airflow_executable()
    assert airflow.exists(), f"no airflow in the project venv ({airflow})"
    done = subprocess.run(
        [str(airflow), *argv, "--help"], env=airflow_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"airflow {' '.join(argv)}: {done.stderr[-2000:]}"
    assert "usage:" in done.stdout.lower(), done.stdout[-2000:]
