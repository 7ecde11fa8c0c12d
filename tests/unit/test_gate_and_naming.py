"""The gate's decisions, semantic versions, and the names every part shares."""

from __future__ import annotations

import pytest

from airflow_provider_mlops.config.models import Evaluation
from airflow_provider_mlops.gate import evaluate_gate, gate_table_markdown
from airflow_provider_mlops.naming import MAX_JOB_NAME, dag_id, job_name
from airflow_provider_mlops.versioning import SemVer, image_tags, parse_series

EVALUATION = Evaluation.model_validate(
    {
        "task": "regression",
        "metrics": ["mse", "r2"],
        "gate": {"mse": {"max": 100, "min_delta": -5}, "r2": {"min": 0.5, "min_delta": 0}},
    }
)


def test_first_model_has_no_champion_and_says_so() -> None:
    result = evaluate_gate(EVALUATION, {"mse": 80, "r2": 0.6}, None)
    assert result["passed"] and result["first_model"] and result["champion_version"] is None
    assert all(c.get("detail") == "no champion" for r in result["rows"] for c in r["checks"] if "delta" in c["rule"])
    assert "first model" in gate_table_markdown(result)


def test_lower_is_better_metrics_use_the_right_direction() -> None:
    # mse 80 -> 83 is 3 worse: allowed by min_delta -5. r2 falls: not allowed by min_delta 0.
    result = evaluate_gate(EVALUATION, {"mse": 83, "r2": 0.55}, {"mse": 80, "r2": 0.6}, "1.0.0")
    rows = {r["metric"]: r for r in result["rows"]}
    assert rows["mse"]["delta"] == -3 and rows["mse"]["passed"]
    assert rows["r2"]["delta"] == pytest.approx(-0.05) and not rows["r2"]["passed"]
    assert not result["passed"] and result["champion_version"] == "1.0.0"


def test_absolute_bounds_and_missing_metrics_fail() -> None:
    assert not evaluate_gate(EVALUATION, {"mse": 101, "r2": 0.9}, None)["passed"]
    result = evaluate_gate(EVALUATION, {"mse": 50}, None)
    assert not result["passed"]
    assert "FAIL" in gate_table_markdown(result)


def test_semver_parsing_and_ordering() -> None:
    assert SemVer.parse("1.10.2") > SemVer.parse("1.9.30")
    assert str(SemVer.parse("0.1.0")) == "0.1.0" and SemVer.parse("2.3.4").series == "2.3"
    for bad in ("1.0", "01.0.0", "1.0.0-rc1", "v1.0.0", ""):
        with pytest.raises(ValueError):
            SemVer.parse(bad)
    assert parse_series("1.10") == (1, 10)
    assert image_tags("1.2", 57, "0123456789abcdef") == ["1.2.57", "0123456789ab"]


def test_dag_ids_follow_the_contract() -> None:
    assert dag_id("demo", "breast-cancer", "train") == "mlops__demo__breast-cancer__train"
    with pytest.raises(ValueError):
        dag_id("demo", "m", "serve")


def test_job_names_are_deterministic_bounded_and_try_independent() -> None:
    long_dag = dag_id("a" * 32, "b" * 32, "train")
    name = job_name(long_dag, "manual__2026-01-01T00:00:00+00:00", "train")
    assert len(name) <= MAX_JOB_NAME
    assert name == job_name(long_dag, "manual__2026-01-01T00:00:00+00:00", "train")
    assert name != job_name(long_dag, "manual__2026-01-02T00:00:00+00:00", "train")
    assert name != job_name(long_dag, "manual__2026-01-01T00:00:00+00:00", "evaluate")
    import re

    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)  # SageMaker's job-name rule
