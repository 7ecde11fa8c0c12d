"""Event filtering, org-level defaults, links and the notify operator's contract."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
import yaml
from example_messages import as_registered, versions
from notify_fakes import SlackServer

from airflow_provider_mlops.config.loader import load_config
from airflow_provider_mlops.exceptions import InputError
from airflow_provider_mlops.notifications import events, links
from airflow_provider_mlops.notifications.send import Redactor

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, notifications: dict | None, defaults: dict | None = None):
    root = tmp_path / "org"
    model = root / "team" / "breast-cancer"
    model.mkdir(parents=True)
    config = yaml.safe_load((REPO / "examples" / "breast-cancer" / "mlops.yaml").read_text())
    config.pop("notifications", None)
    if notifications is not None:
        config["notifications"] = notifications
    (model / "mlops.yaml").write_text(yaml.safe_dump(config))
    if defaults is not None:
        (root / "mlops-defaults.yaml").write_text(yaml.safe_dump({"notifications": defaults}))
    return load_config(model / "mlops.yaml", root=root)


CONTEXT = {"ti": SimpleNamespace(dag_id="mlops__demo__breast-cancer__train", run_id="manual__1", task_id="notify", try_number=1)}


def test_org_defaults_give_every_model_its_channels(tmp_path: Path, slack_server: SlackServer) -> None:
    loaded = _config(tmp_path, None, defaults={"slack": {"connection_id": "slack_hook"}, "events": ["training_finished"]})
    assert loaded.config.notifications.slack.connection_id == "slack_hook"
    [result] = events.training_finished(loaded, CONTEXT, as_registered(versions()["1.0.0"]))
    assert result.ok and len(slack_server.requests) == 1


def test_a_model_overrides_the_org_event_list(tmp_path: Path, slack_server: SlackServer) -> None:
    loaded = _config(tmp_path, {"events": ["failure"]}, defaults={"slack": {"connection_id": "slack_hook"}})
    assert loaded.config.notifications.slack is not None
    assert events.training_finished(loaded, CONTEXT, as_registered(versions()["1.0.0"])) == []
    assert slack_server.requests == []


def test_no_channel_configured_sends_nothing(tmp_path: Path) -> None:
    loaded = _config(tmp_path, None)
    assert events.training_finished(loaded, CONTEXT, as_registered(versions()["1.0.0"])) == []


def test_rejected_and_rolled_back_reach_slack(tmp_path: Path, slack_server: SlackServer) -> None:
    loaded = _config(tmp_path, {"slack": {"connection_id": "slack_hook"}})
    events.rejected(loaded, CONTEXT, {"semver": "1.0.1"}, by="alice", reason="Reject in Airflow")
    events.rolled_back(loaded, CONTEXT, endpoint="demo--breast-cancer", failed_version="1.0.1", restored_version="1.0.0",
                       reason="smoke test got HTTP 500")
    titles = [r.json()["blocks"][0]["text"]["text"] for r in slack_server.requests]
    assert titles == ["demo/breast-cancer 1.0.1: deploy rejected by alice",
                      "demo/breast-cancer 1.0.1: rolled back to 1.0.0 on demo--breast-cancer"]


def test_a_broken_record_is_logged_not_raised(tmp_path: Path, slack_server: SlackServer) -> None:
    loaded = _config(tmp_path, {"slack": {"connection_id": "slack_hook"}})
    assert events.training_finished(loaded, CONTEXT, {"gate": {"rows": [{"no": "metric"}]}}) == []
    assert events.task_failed(loaded, {}) == []
    assert slack_server.requests == []


def test_approval_link_is_the_hitl_operators_own() -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    operator = ApprovalOperator(task_id="approve", subject="s")
    ti = SimpleNamespace(dag_id="mlops__demo__breast-cancer__deploy", run_id="manual__2026-01-01T00:00:00+00:00",
                         task_id="approve", map_index=-1)
    expected = operator.generate_link_to_ui(task_instance=ti, base_url="http://airflow.example.com")
    ours = links.approval_url(ti.dag_id, ti.run_id, "approve", "http://airflow.example.com")
    assert unquote(ours) == unquote(expected)  # ours percent-encodes the run id, as Airflow's log_url does


def test_log_link_matches_airflows_log_url_shape() -> None:
    url = links.task_log_url("d", "manual__1", "train", 2, "http://a:8080")
    assert url == "http://a:8080/dags/d/runs/manual__1/tasks/train?try_number=2"


def test_sagemaker_links_need_a_region() -> None:
    assert links.sagemaker_endpoint_url(None, "ep") is None
    assert links.sagemaker_endpoint_url("eu-west-1", "ep") == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/endpoints/ep")
    assert links.region_of("arn:aws:sagemaker:eu-west-1:123456789012:model-package/g/1") == "eu-west-1"


def test_redactor_replaces_longest_secret_first() -> None:
    redact = Redactor(["abcd", "xx-abcd-yy", None, ""])
    assert redact("url http://h/xx-abcd-yy and abcd") == "url http://h/*** and ***"


def test_notify_operator_contract() -> None:
    from airflow_provider_mlops.operators.notify import MlopsNotifyOperator

    assert isinstance(MlopsNotifyOperator.template_fields, tuple)
    assert list(MlopsNotifyOperator.template_fields) == sorted(MlopsNotifyOperator.template_fields)
    with pytest.raises(InputError, match="not one of"):
        MlopsNotifyOperator(task_id="n", config_path="x", event="nope", source_task_id="register")
