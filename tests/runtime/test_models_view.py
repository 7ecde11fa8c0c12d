"""
The MLOps views in the Airflow UI, in Debian's Chromium, against the real api-server (which
loads the provider's plugin and mounts its app at /mlops) on PostgreSQL.

A copy of the example model, published under its own name (so it never meets the seed
pipeline's versions), gets three versions in the runtime's local registry: 1.0.0 approved and
in production, 1.0.1 rejected by the gate, 1.0.2 waiting for approval. Then a person (admin)
opens the Models page and the Model tab of the model's train DAG; the screenshots are kept in
the test's temp folder and their paths printed. A request without a login sees nothing.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import CHROMIUM_ARGS, chromium_path, ui
from runtime_env import EXAMPLE, AirflowApiError, World, timed

from airflow_provider_mlops.naming import model_group
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED

pytestmark = pytest.mark.runtime

PROJECT, MODEL = "demo", "breast-cancer-ui"
REF, GROUP = f"{PROJECT}/{MODEL}", model_group(PROJECT, MODEL)
TRAIN_DAG = f"mlops__{PROJECT}__{MODEL}__train"
MATRIX = {"labels": ["malignant", "benign"], "matrix": [[40, 3], [2, 69]]}
#: version -> (f1, gate passed, C); 1.0.2 against 1.0.0: f1 +0.0200, recall +0.0200, C 1.0 -> 2.0.
VERSIONS = {"1.0.0": (0.95, True, 1.0), "1.0.1": (0.80, False, 0.01), "1.0.2": (0.97, True, 2.0)}


def publish_model(world: World) -> Path:
    """The example under its own name in the configs folder, without a retrain schedule (nothing runs by itself)."""
    folder = world.published / PROJECT / MODEL
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    text = (folder / "mlops.yaml").read_text().replace("model: breast-cancer\n", f"model: {MODEL}\n")
    (folder / "mlops.yaml").write_text(text.split("\nschedule:", 1)[0] + "\n")
    return folder


def register_versions(world: World) -> None:
    registry = world.registry()
    for semver, (f1, passed, c) in VERSIONS.items():
        version = registry.register(
            GROUP, "1.0", idempotency_key=f"ui-view/{semver}", artifact_uri=f"file:///models/{semver}",
            metrics={"f1": f1, "recall": f1 - 0.01, "precision": 0.93, "confusion_matrix": MATRIX},
            gate={"passed": passed, "champion_version": "1.0.0" if semver != "1.0.0" else None,
                  "rows": [{"metric": "f1", "candidate": f1, "passed": passed, "checks": [{"rule": ">= 0.9", "passed": passed}]}]},
            lineage={"image": f"registry.local/demo/breast-cancer:{semver}", "commit": "0123abc",
                     "hyperparameters": {"C": c, "max_iter": 500}, "data": {"train": "data/train"}, "run_id": f"run-{semver}"},
            status=PENDING if passed else REJECTED,
        )
        assert version.semver == semver, f"the registry of this session already holds {GROUP}: {version.semver}"
        if semver == "1.0.0":
            registry.set_approval(GROUP, semver, APPROVED, by="alice", reason="beats the baseline")
            registry.promote(GROUP, semver, deployment={"endpoint": GROUP, "strategy": "all_at_once"})
        elif not passed:
            registry.set_approval(GROUP, semver, REJECTED, by="gate", reason="failed the evaluation gate")


def wait_parsed(world: World, dag_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        world.airflow.check_alive()
        try:
            world.api().request("GET", f"/api/v2/dags/{dag_id}")
            return
        except AirflowApiError as exc:
            if exc.status != 404:
                raise
        time.sleep(1)
    raise AssertionError(f"{dag_id} was not parsed within {timeout:.0f}s\n{world.airflow.describe_logs(20)}")


@pytest.fixture(scope="module")
def model_world(world: World) -> Iterator[World]:
    folder = publish_model(world)
    try:
        register_versions(world)
        with timed("UI views: the copied model's DAGs parsed"):
            wait_parsed(world, TRAIN_DAG)
        yield world
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # its DAGs go at the next parse; the registry keeps its rows


def _status(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_a_request_without_login_sees_nothing(model_world: World, tmp_path: Path) -> None:
    base = model_world.airflow.base_url
    for path in ("/mlops/models", "/mlops/api/models", f"/mlops/dag/{TRAIN_DAG}",
                 f"/mlops/api/models/{PROJECT}/{MODEL}/versions", f"/mlops/models/{PROJECT}/{MODEL}/card/1.0.0.md"):
        status, body = _status(base + path)
        assert status == 401, (path, status, body[:500])
        assert MODEL not in body and "1.0.0" not in body, (path, body[:500])
        status, body = _status(base + path, {"Authorization": "Bearer not-a-token"})
        assert status in (401, 403) and MODEL not in body, (path, status, body[:500])
    # The same in a browser that never logged in.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            response = page.goto(f"{base}/mlops/models")
            assert response is not None and response.status == 401
            assert MODEL not in page.inner_text("body")
            shot = tmp_path / "no-login.png"
            page.screenshot(path=str(shot))
            print(f"screenshot: {shot}")
        finally:
            browser.close()


def test_models_page_and_model_tab_in_chromium(model_world: World, tmp_path: Path) -> None:
    airflow = model_world.airflow
    shots: dict[str, Path] = {}
    with timed("browser: Models page and Model tab"), \
            ui(airflow.base_url, airflow.passwords["admin"], tmp_path / "shots") as ui_page:
        page: Any = ui_page.page
        # The JSON, with the browser's own login (its cookie).
        listed = {m["ref"]: m for m in page.request.get(f"{airflow.base_url}/mlops/api/models").json()}
        assert listed[REF]["production"] == "1.0.0" and listed[REF]["latest"] == "1.0.2", listed.get(REF)
        assert listed[REF]["pending_approvals"] == ["1.0.2"]

        # The Models page: in the navigation, shown in the UI's plugin frame.
        page.goto(f"{airflow.base_url}/")
        nav = page.locator("a[href$='plugin/mlops-models']")
        nav.first.wait_for(timeout=30_000)
        nav.first.click()
        page.wait_for_url(lambda url: url.endswith("/plugin/mlops-models"), timeout=30_000)
        frame = page.frame_locator("iframe[src*='/mlops/models']")
        row = frame.locator(f"tr.model[data-model='{REF}']")
        row.wait_for(timeout=30_000)
        assert row.locator("td.production-version").inner_text().strip() == "1.0.0"
        assert row.locator("td.latest-version").inner_text().strip() == "1.0.2"
        assert "1.0.2" in row.locator("td.last-gate").inner_text() and "pass" in row.locator("td.last-gate").inner_text()
        assert row.locator("td.pending a").get_attribute("href") == "/required_actions"
        page.wait_for_timeout(500)
        shots["models"] = ui_page.shot("models-page")

        # The Model tab of the model's train DAG.
        page.goto(f"{airflow.base_url}/dags/{TRAIN_DAG}/plugin/mlops-model")
        frame = page.frame_locator(f"iframe[src*='/mlops/dag/{TRAIN_DAG}']")
        versions = frame.locator("table.versions tbody tr")
        versions.first.wait_for(timeout=30_000)
        assert versions.count() == 3
        assert [versions.nth(i).get_attribute("data-version") for i in range(3)] == ["1.0.0", "1.0.1", "1.0.2"]
        assert "Rejected" in versions.nth(1).inner_text() and "FAIL" in versions.nth(1).inner_text()
        assert "failed the evaluation gate" in versions.nth(1).inner_text()
        points = frame.locator("svg.metric-chart[data-metric='f1'] circle.point")
        assert points.count() == 3
        production = frame.locator("svg.metric-chart[data-metric='f1'] circle.point.production")
        assert production.count() == 1 and production.get_attribute("data-version") == "1.0.0"
        assert frame.locator("svg.confusion-matrix rect.cell").count() == 4
        shots["tab"] = ui_page.shot("model-tab")

        # Compare 1.0.0 with 1.0.2.
        frame.locator("form.compare select[name=a]").select_option("1.0.0")
        frame.locator("form.compare select[name=b]").select_option("1.0.2")
        frame.locator("form.compare button").click()
        f1_row = frame.locator("table.compare-metrics tr[data-metric='f1']")
        f1_row.wait_for(timeout=30_000)
        frame.locator("table.compare-metrics th", has_text="1.0.0").first.wait_for(timeout=30_000)
        assert f1_row.locator("td.delta").inner_text().strip() == "+0.0200"
        precision = frame.locator("table.compare-metrics tr[data-metric='precision'] td.delta")
        assert precision.inner_text().strip() == "+0.0000"
        assert "changed" in frame.locator("table.compare-hyperparameters tr.changed").first.inner_text()
        shots["compare"] = ui_page.shot("model-tab-compare")

        # The card of the production version, exported as Markdown.
        with page.expect_download(timeout=30_000) as download_info:
            frame.locator("a.export").click()
        saved = tmp_path / "card.md"
        download_info.value.save_as(str(saved))
        card = saved.read_text()
        assert card.startswith(f"# Model card: {REF} 1.0.0\n"), card[:300]
        assert "Logistic regression" in card and "| Owner | data-science |" in card
        assert "| Approved | alice | " in card and "| **f1** (primary) | 0.9500 |" in card

        # A DAG that is not a model's shows the tab without data.
        other = page.request.get(f"{airflow.base_url}/mlops/dag/not_a_model_dag")
        assert other.status == 200 and "is not the DAG of an MLOps model" in other.text()
    for name, path in shots.items():
        assert path.stat().st_size > 10_000, path
        print(f"screenshot {name}: {path}")
