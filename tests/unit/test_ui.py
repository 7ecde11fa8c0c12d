"""
The MLOps views' builders without a browser: JSON (ui/data), SVG (ui/svg), HTML (ui/pages),
the model card (ui/card, ``mlops card``) and the plugin's declaration, against a real local
registry in a temp folder and the example's real mlops.yaml.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_mlops import runtime
from airflow_provider_mlops.config.loader import LoadedConfig, load_config
from airflow_provider_mlops.exceptions import InputError
from airflow_provider_mlops.registry.base import APPROVED, PENDING, REJECTED, ModelVersion
from airflow_provider_mlops.registry.local import LocalModelRegistry
from airflow_provider_mlops.ui import data, pages
from airflow_provider_mlops.ui.card import card_markdown, model_card
from airflow_provider_mlops.ui.svg import confusion_matrix_svg, metric_chart

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "breast-cancer"
SVG = "{http://www.w3.org/2000/svg}"
MATRIX = {"labels": ["malignant", "benign"], "matrix": [[40, 3], [2, 69]]}


def _version(registry: LocalModelRegistry, group: str, key: str, f1: float, *, passed: bool, c: float) -> ModelVersion:
    return registry.register(
        group, "1.0", idempotency_key=key, artifact_uri=f"file:///models/{key}",
        metrics={"f1": f1, "recall": f1 - 0.01, "confusion_matrix": MATRIX},
        gate={"passed": passed, "champion_version": None, "rows": [{"metric": "f1", "candidate": f1, "passed": passed,
                                                                    "checks": [{"rule": ">= 0.9", "passed": passed}]}]},
        lineage={"image": f"registry.local/demo:{key}", "commit": "abc1234", "hyperparameters": {"C": c, "max_iter": 500},
                 "data": {"train": "data/train"}, "run_id": f"run-{key}"},
        status=PENDING if passed else REJECTED,
    )


def seed(registry: LocalModelRegistry, group: str) -> list[ModelVersion]:
    """Three versions: 1.0.0 in production, 1.0.1 rejected by the gate, 1.0.2 waiting for approval."""
    first = _version(registry, group, "one", 0.95, passed=True, c=1.0)
    registry.set_approval(group, first.semver, APPROVED, by="alice", reason="beats the baseline")
    registry.promote(group, first.semver, deployment={"endpoint": group, "strategy": "all_at_once"})
    rejected = _version(registry, group, "two", 0.80, passed=False, c=0.01)
    registry.set_approval(group, rejected.semver, REJECTED, by="gate", reason="failed the evaluation gate")
    _version(registry, group, "three", 0.97, passed=True, c=2.0)
    return data.ordered(registry.list_versions(group))


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LoadedConfig, list[ModelVersion]]:
    folder = tmp_path / "configs" / "demo" / "breast-cancer"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__", "data"))
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    loaded = load_config(folder / "mlops.yaml", root=tmp_path / "configs")
    registry = runtime.registry_for(loaded)
    assert isinstance(registry, LocalModelRegistry)
    return loaded, seed(registry, runtime.group_of(loaded))


def test_summary_names_production_latest_last_gate_and_pending(model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    loaded, versions = model
    summary = data.model_summary(loaded, list(reversed(versions)))  # any order in: the registry's order out
    assert summary["production"] == "1.0.0"
    assert summary["latest"] == "1.0.2"
    assert summary["last_gate"] == {"version": "1.0.2", "result": "pass"}
    assert summary["last_deploy"]["version"] == "1.0.0" and summary["last_deploy"]["endpoint"] == "demo--breast-cancer"
    assert summary["pending_approvals"] == ["1.0.2"]
    assert summary["dag_ids"]["train"] == "mlops__demo__breast-cancer__train"


def test_versions_rows_show_gate_approver_and_reason(model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    loaded, versions = model
    rows = [data.version_row(v, data.primary_metric(loaded)) for v in versions]
    assert [(r["semver"], r["status"], r["stage"], r["gate"]) for r in rows] == [
        ("1.0.0", APPROVED, "production", "pass"), ("1.0.1", REJECTED, "-", "FAIL"), ("1.0.2", PENDING, "-", "pass")]
    assert rows[0]["primary_metric"] == 0.95 and rows[0]["approver"] == "alice"
    assert rows[1]["reason"] == "failed the evaluation gate"
    assert rows[2]["lineage"]["image"] == "registry.local/demo:three"


def test_series_leave_out_the_confusion_matrix_and_mark_production(model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    _, versions = model
    series = data.metric_series(versions)
    assert sorted(series) == ["f1", "recall"]
    assert [(p["semver"], p["value"], p["production"]) for p in series["f1"]] == [
        ("1.0.0", 0.95, True), ("1.0.1", 0.80, False), ("1.0.2", 0.97, False)]


def test_chart_has_one_point_per_version_and_marks_production(model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    _, versions = model
    svg = ET.fromstring(metric_chart("f1", data.metric_series(versions)["f1"]))  # well-formed XML
    points = [c for c in svg.iter(f"{SVG}circle") if "point" in c.get("class", "").split()]
    assert [p.get("data-version") for p in points] == ["1.0.0", "1.0.1", "1.0.2"]
    assert [p.get("data-version") for p in points if "production" in p.get("class", "")] == ["1.0.0"]
    heights = {p.get("data-version"): float(p.get("cy", "0")) for p in points}
    assert heights["1.0.2"] < heights["1.0.0"] < heights["1.0.1"]  # higher value, higher on screen
    assert len(list(svg.iter(f"{SVG}polyline"))) == 1
    single = ET.fromstring(metric_chart("f1", [{"semver": "1.0.0", "value": 0.5, "production": False}]))
    assert len(list(single.iter(f"{SVG}circle"))) == 1  # one version: a point, no division by zero
    assert metric_chart("f1", []) == ""


def test_compare_gives_deltas_and_the_hyperparameter_diff(model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    _, versions = model
    comparison = data.compare_versions(versions[0], versions[2])
    metrics = {r["metric"]: r for r in comparison["metrics"]}
    assert metrics["f1"]["delta"] == pytest.approx(0.02) and metrics["recall"]["delta"] == pytest.approx(0.02)
    hps = {r["name"]: r for r in comparison["hyperparameters"]}
    assert hps["C"] == {"name": "C", "a": 1.0, "b": 2.0, "changed": True}
    assert hps["max_iter"]["changed"] is False
    lineage = {r["field"]: r for r in comparison["lineage"]}
    assert lineage["image"]["changed"] is True and lineage["commit"]["changed"] is False
    html = pages.compare_section(comparison, ["1.0.0", "1.0.1", "1.0.2"], "/mlops/dag/x")
    assert '<td class="num delta up">+0.0200</td>' in html


def test_confusion_matrix_is_drawn_cell_by_cell(model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    _, versions = model
    matrix = data.confusion_matrix(versions[0])
    assert matrix == {"labels": ["malignant", "benign"], "matrix": [[40.0, 3.0], [2.0, 69.0]]}
    svg = ET.fromstring(confusion_matrix_svg(matrix))
    assert len([r for r in svg.iter(f"{SVG}rect") if r.get("class") == "cell"]) == 4
    assert "69" in [t.text for t in svg.iter(f"{SVG}text")]
    assert data.confusion_matrix(ModelVersion("g", "1.0.0", 1, PENDING, "t", "u", metrics={"f1": 1.0})) is None


def test_card_markdown_has_the_config_description_owner_metrics_and_decision(
        model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    loaded, versions = model
    text = card_markdown(model_card(loaded, versions[0]))
    assert text.startswith("# Model card: demo/breast-cancer 1.0.0\n")
    assert loaded.config.description in text
    assert "| Owner | data-science |" in text
    assert "| Tags | example, classification |" in text
    assert f"| Config | {loaded.path} |" in text
    assert "| **f1** (primary) | 0.9500 |" in text
    assert "| malignant | 40 | 3 |" in text
    assert "| Approved | alice |" in text
    assert "## Deployment" in text and "all_at_once" in text
    rejected = card_markdown(model_card(loaded, versions[1]))
    assert "Result: **FAIL**" in rejected and "failed the evaluation gate" in rejected


def test_card_of_a_config_without_description_shows_what_exists(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "mlops.yaml").write_text('project: p\nmodel: bare\nversion: "2.1"\n')
    loaded = load_config(folder / "mlops.yaml")
    version = ModelVersion("p--bare", "2.1.0", 1, PENDING, "2026-01-01T00:00:00.000+00:00", "file:///m")
    text = card_markdown(model_card(loaded, version))
    assert "| Project | p |" in text and "| Model | bare |" in text and "| Tags | - |" in text
    assert "Not decided yet." in text and "## Metrics" not in text


def test_pages_escape_what_the_config_and_registry_say(model: tuple[LoadedConfig, list[ModelVersion]]) -> None:
    loaded, versions = model
    summary = {**data.model_summary(loaded, versions), "description": "<script>alert(1)</script>"}
    html = pages.models_page([summary], "")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="/required_actions" target="_top">1 waiting: 1.0.2</a>' in html
    assert 'href="/dags/mlops__demo__breast-cancer__train/plugin/mlops-model"' in html
    assert "No models you may read" in pages.models_page([], "")
    tab = pages.model_tab_page(
        ref="demo/breast-cancer", dag_id="mlops__demo__breast-cancer__train", primary="f1",
        rows=[data.version_row(v, "f1") for v in versions], series=data.metric_series(versions),
        comparison=data.compare_versions(versions[1], versions[2]), card=model_card(loaded, versions[0]),
        action="/mlops/dag/x", export_href="/mlops/models/demo/breast-cancer/card/1.0.0.md")
    assert tab.count('<tr class="version') == 3 and tab.count('class="metric-chart"') == 2
    assert 'href="/mlops/models/demo/breast-cancer/card/1.0.0.md" download' in tab
    empty = pages.model_tab_page(ref="demo/x", dag_id="mlops__demo__x__deploy", primary="f1", rows=[], series={},
                                 comparison=None, card=None, action="", export_href="")
    assert "No versions registered yet" in empty and "mlops__demo__x__train" in empty


def test_models_are_found_as_the_dag_loader_finds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dags = tmp_path / "dags"
    shutil.copytree(EXAMPLE, dags / "mlops" / "demo" / "breast-cancer", ignore=shutil.ignore_patterns("__pycache__", "data"))
    monkeypatch.delenv("MLOPS_CONFIG_PATH", raising=False)
    models, errors = data.find_models(data.model_roots(dags))
    assert [data.model_ref(m) for m in models] == ["demo/breast-cancer"] and not errors
    assert data.model_of_dag(models, "mlops__demo__breast-cancer__retrain") is models[0]
    assert data.model_of_dag(models, "mlops__demo__breast-cancer__train__x") is None
    assert data.model_of_dag(models, "some_other_dag") is None
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(tmp_path / "elsewhere"))
    assert data.model_roots(dags) == [tmp_path / "elsewhere"]
    with pytest.raises(InputError, match=r"no model demo/nope .*known: demo/breast-cancer"):
        data.model_by_ref(models, "demo", "nope")
    with pytest.raises(InputError, match=r"no version '9.9.9' \(registered: none\)"):
        data.find_version([], "9.9.9", "demo/breast-cancer")


def test_mlops_card_prints_and_writes_the_card(model: tuple[LoadedConfig, list[ModelVersion]], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from airflow_provider_mlops import cli_card

    loaded, _ = model
    parser = argparse.ArgumentParser()
    cli_card.add_parsers(parser.add_subparsers())
    args = parser.parse_args(["card", "demo/breast-cancer", "1.0.1", "--config", str(loaded.path)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.startswith("# Model card: demo/breast-cancer 1.0.1\n")
    out = tmp_path / "card.md"
    args = parser.parse_args(["card", "demo/breast-cancer", "1.0.0", "--config", str(loaded.path), "-o", str(out)])
    assert args.func(args) == 0 and "| Approved | alice |" in out.read_text()
    args = parser.parse_args(["card", "demo/breast-cancer", "3.0.0", "--config", str(loaded.path)])
    with pytest.raises(InputError, match=r"registered: 1.0.0, 1.0.1, 1.0.2"):
        args.func(args)


def test_plugin_declares_the_app_and_both_views_and_imports_nothing_heavy() -> None:
    import airflow_provider_mlops

    info: dict[str, Any] = airflow_provider_mlops.get_provider_info()
    assert info["plugins"] == [{"name": "mlops", "plugin-class": "airflow_provider_mlops.ui.plugin.MlopsUiPlugin"}]
    code = (
        "import sys; from airflow_provider_mlops.ui.plugin import MlopsUiPlugin as P;"
        "views={v['destination']: v for v in P.external_views};"
        "assert views['nav']['href']=='/mlops/models', views; assert views['dag']['href']=='/mlops/dag/{DAG_ID}', views;"
        "assert P.fastapi_apps[0]['url_prefix']=='/mlops';"
        "routes={r.path for r in P.fastapi_apps[0]['app'].routes}; assert '/dag/{dag_id}' in routes, routes;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('boto3','botocore','kubernetes','numpy','sagemaker')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_a_user_sees_only_the_models_whose_dags_the_auth_manager_lets_them_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per-DAG access, as an auth manager with DAG-level permissions (FAB, Keycloak) decides it."""
    from airflow_provider_mlops.ui import app

    for name in ("breast-cancer", "diabetes"):
        shutil.copytree(REPO / "examples" / name, tmp_path / "configs" / "demo" / name,
                        ignore=shutil.ignore_patterns("__pycache__", "data"))
    monkeypatch.setenv("MLOPS_CONFIG_PATH", str(tmp_path / "configs"))
    asked: list[tuple[set[str], Any]] = []

    class OnlyBreastCancer:
        def filter_authorized_dag_ids(self, *, dag_ids: set[str], user: Any, method: str) -> set[str]:
            asked.append((set(dag_ids), user))
            assert method == "GET"
            return {d for d in dag_ids if "__breast-cancer__" in d}

    monkeypatch.setattr("airflow.api_fastapi.app.get_auth_manager", lambda: OnlyBreastCancer())
    visible, errors = app.visible_models("bob")
    assert errors == 0 and [data.model_ref(m) for m in visible] == ["demo/breast-cancer"]
    assert asked and asked[0][1] == "bob" and "mlops__demo__diabetes__train" in asked[0][0]
    with pytest.raises(app.HTTPException) as hidden:  # another model is 404, as if it did not exist
        app._model("bob", "demo", "diabetes")
    assert hidden.value.status_code == 404
