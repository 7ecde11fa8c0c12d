"""The deployable zip: what build.sh puts in it, and that it runs on its own."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from trigger_testenv import ECR_REGISTRY, LAMBDA_DIR, valid_event


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "trigger_lambda.zip"
    subprocess.run(
        ["bash", str(LAMBDA_DIR / "build.sh"), str(out)],
        check=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    return out


def test_zip_holds_the_handler_and_nothing_else(lambda_zip):
    names = set(zipfile.ZipFile(lambda_zip).namelist())
    sources = {f"mlops_trigger/{p.name}" for p in (LAMBDA_DIR / "mlops_trigger").glob("*.py")}
    assert names == {"handler.py", *sources}


def test_zip_is_reproducible(lambda_zip, tmp_path):
    again = tmp_path / "again.zip"
    subprocess.run(
        ["bash", str(LAMBDA_DIR / "build.sh"), str(again)],
        check=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert again.read_bytes() == lambda_zip.read_bytes()


def run_from_zip(lambda_zip: Path, code: str, env: dict[str, str]) -> dict:
    """Run ``code`` in a fresh interpreter whose only project code is the zip."""
    program = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(lambda_zip)!r})\n"
        f"{code}\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'airflow_provider_mlops', 'boto3', 'botocore'})\n"
        "print(json.dumps({'answer': answer, 'heavy': heavy}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd="/",
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_handler_from_the_zip_imports_neither_airflow_nor_boto3(lambda_zip):
    env = {
        "MLOPS_AIRFLOW_API_URL": "http://127.0.0.1:9",
        "MLOPS_AIRFLOW_TOKEN": "t",
        "MLOPS_ECR_REGISTRY": ECR_REGISTRY,
    }
    code = (
        "import handler\n"
        f"bad = handler.handler({json.dumps(valid_event(project='../x'))!r}, None)\n"
        f"good = handler.handler({json.dumps(valid_event())!r}, None)\n"
        "answer = [bad['statusCode'], good['statusCode'], good.get('error')]\n"
    )
    result = run_from_zip(lambda_zip, code, env)
    assert result["answer"] == [400, 504, "airflow_unreachable"]
    assert result["heavy"] == []


def test_import_alone_loads_no_network_module(lambda_zip):
    code = "import handler\nanswer = sorted(m for m in sys.modules if m in ('urllib.request', 'http.client', 'ssl'))\n"
    assert run_from_zip(lambda_zip, code, {})["answer"] == []
