"""The local endpoint: SageMaker's inference contract, swaps without dropped requests, safe failed deploys."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from endpoint_models import INFERENCE, model_folder

from airflow_provider_mlops.exceptions import DeploymentError
from airflow_provider_mlops.serving.local import LocalServing, http_get, invoke


@pytest.fixture
def served(tmp_path: Path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(INFERENCE)
    serving = LocalServing(tmp_path / "home", drain_seconds=0.5)
    yield serving, code, tmp_path
    serving.stop("ep")


def test_endpoint_serves_the_sagemaker_contract(served) -> None:
    serving, code, tmp = served
    result = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))
    url = result["url"]
    assert url.startswith("http://127.0.0.1:") and result["previous_version"] is None
    assert http_get(f"{url}/ping")[0] == 200
    status, headers, body = invoke(url, json.dumps([1, 2]).encode())
    assert status == 200 and json.loads(body) == {"version": "v1", "echo": [1, 2]}
    assert headers["X-Mlops-Model-Version"] == "1.0.0"
    assert invoke(url, b"not json")[0] == 400
    assert serving.status("ep")["version"] == "1.0.0"


def test_a_deploy_swaps_versions_without_dropping_requests(served) -> None:
    serving, code, tmp = served
    url = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))["url"]
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:  # bounded: at most 20 s or 5,000 requests
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline and len(seen) < 5000:
            status, _, body = invoke(url, b"[0]", timeout=10)
            seen.append((status, json.loads(body).get("version", "?") if status == 200 else body.decode()))

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.3)
    result = serving.deploy_model("ep", version="1.0.1", model_dir=model_folder(tmp, "v2"), code_dir=str(code))
    time.sleep(0.8)  # past the old server's drain time
    stop.set()
    thread.join(timeout=30)
    assert result["url"] == url and result["previous_version"] == "1.0.0"
    failures = [s for s in seen if s[0] != 200]
    assert not failures, failures[:3]
    versions = [v for _, v in seen]
    assert "v1" in versions and versions[-1] == "v2"
    assert versions.index("v2") > 0 and "v1" not in versions[versions.index("v2"):]  # one clean switch


def test_a_version_that_fails_to_start_leaves_the_old_one_serving(served) -> None:
    serving, code, tmp = served
    url = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))["url"]
    with pytest.raises(DeploymentError, match="exited with code"):
        serving.deploy_model("ep", version="1.0.1", model_dir=model_folder(tmp, "bad", broken=True), code_dir=str(code), health_timeout=20)
    status, headers, _ = invoke(url, b"[1]")
    assert status == 200 and headers["X-Mlops-Model-Version"] == "1.0.0"
    assert serving.status("ep")["version"] == "1.0.0"


def test_a_version_failing_its_health_check_leaves_the_old_one_serving(served) -> None:
    serving, code, tmp = served
    url = serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))["url"]
    unhealthy = tmp / "unhealthy"
    unhealthy.mkdir()
    # A server that starts and binds, but never answers /ping with 200.
    (unhealthy / "inference.py").write_text(INFERENCE + "\ndef ping_fn(model):\n    return False\n")
    with pytest.raises(DeploymentError, match="failed its health check"):
        serving.deploy_model("ep", version="1.0.1", model_dir=model_folder(tmp, "v2"), code_dir=str(unhealthy), health_timeout=3)
    assert invoke(url, b"[1]")[1]["X-Mlops-Model-Version"] == "1.0.0"


def test_redeploying_the_serving_version_changes_nothing(served) -> None:
    serving, code, tmp = served
    model = model_folder(tmp, "v1")
    first = serving.deploy_model("ep", version="1.0.0", model_dir=model, code_dir=str(code))
    again = serving.deploy_model("ep", version="1.0.0", model_dir=model, code_dir=str(code))
    assert again["unchanged"] and again["url"] == first["url"]


def test_stop_takes_the_endpoint_down(served) -> None:
    serving, code, tmp = served
    serving.deploy_model("ep", version="1.0.0", model_dir=model_folder(tmp, "v1"), code_dir=str(code))
    serving.stop("ep")
    status = serving.status("ep")
    assert status["router_running"] is False and status["url"] is None
