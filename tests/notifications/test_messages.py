"""Snapshot tests: every event's Slack blocks and SNS text over the example model's real metrics.

Set ``UPDATE_SNAPSHOTS=1`` to rewrite the snapshots after an intended change, and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from example_messages import as_registered, example_messages, versions

from airflow_provider_mlops.notifications import EVENTS, formats, messages

SNAPSHOTS = Path(__file__).parent / "snapshots"
EXAMPLES = example_messages()


def _check(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
    # A missing snapshot fails: writing it here would compare the output with itself.
    assert path.exists(), f"no snapshot {path}: run with UPDATE_SNAPSHOTS=1 once, review and commit it"
    assert text == path.read_text(), f"{name} changed; rerun with UPDATE_SNAPSHOTS=1 if intended"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_slack_snapshot(name: str) -> None:
    _check(f"{name}.slack.json", json.dumps(formats.slack_payload(EXAMPLES[name]), indent=2, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_sns_snapshot(name: str) -> None:
    message = EXAMPLES[name]
    text = f"Subject: {formats.sns_subject(message)}\nAttributes: {json.dumps(formats.sns_attributes(message))}\n\n"
    _check(f"{name}.sns.txt", text + formats.sns_body(message) + "\n")


def test_training_message_carries_gate_table_deltas_and_confusion_matrix() -> None:
    body = formats.sns_body(EXAMPLES["training_finished_failed"])
    assert "Gate FAILED: candidate 1.0.1 against production 1.0.0" in body
    assert "f1 *       0.9727     0.9889      -0.0162  >= 0.9: pass, delta >= -0.01: FAIL  FAIL" in body
    assert "recall     0.9889     0.9889      +0.0000  >= 0.9: pass                        pass" in body
    assert "malignant           49         4" in body
    assert "malignant" in body and "benign" in body
    blocks = formats.slack_payload(EXAMPLES["training_finished_failed"])["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                                    "text": "demo/breast-cancer 1.0.1: training finished, gate FAILED"}}
    assert "f1 *       0.9727     0.9889      -0.0162  &gt;= 0.9: pass, delta &gt;= -0.01: FAIL  FAIL" in blocks[3]["text"]["text"]
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[2]["fields"]}
    assert fields["*Version*"] == "1.0.1" and fields["*Champion*"] == "1.0.0"


def test_first_model_says_there_is_no_champion() -> None:
    message = EXAMPLES["training_finished_passed"]
    assert dict(message.fields)["Champion"] == "none (first model)"
    assert "delta >= -0.01: pass (no champion)" in formats.gate_table_text(message)


def test_every_event_has_a_builder_and_the_config_allows_it() -> None:
    from typing import get_args

    from airflow_provider_mlops.config.models import NotificationEvent

    assert set(EVENTS) == set(get_args(NotificationEvent))
    built = {m.event for m in EXAMPLES.values()}
    built.add(messages.rejected("p", "m", {"semver": "1.0.0"}, by="alice", reason="Reject", links={}).event)
    built.add(messages.rolled_back("p", "m", endpoint="e", failed_version="1.0.1", restored_version="1.0.0",
                                   reason="HTTP 500", links={}).event)
    assert built == set(EVENTS)


def test_sns_subject_is_ascii_one_line_and_short() -> None:
    long = messages.task_failure("p" * 40, "m" * 40, dag_id="d" * 60, task_id="t→ü", try_number=1, max_tries=0,
                                 error="x", links={})
    subject = formats.sns_subject(long)
    assert len(subject) < 100 and subject.isascii() and "\n" not in subject


def test_slack_limits_are_respected() -> None:
    huge = messages.task_failure("p", "m", dag_id="d", task_id="t", try_number=1, max_tries=0, error="E" * 10_000,
                                 links={"Log": "http://x"})
    payload = formats.slack_payload(huge)
    assert len(huge.detail or "") <= messages.ERROR_SUMMARY_CHARS
    for block in payload["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= formats.SLACK_TEXT_CHARS
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= formats.SLACK_HEADER_CHARS


def test_registered_record_is_what_the_register_task_returned() -> None:
    v = versions()
    assert as_registered(v["1.0.0"])["status"] == "PendingManualApproval"
    assert as_registered(v["1.0.1"])["status"] == "Rejected"


def test_docs_show_the_current_snapshots() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text()
    for name in ("training_finished_failed.sns.txt", "training_finished_passed.sns.txt", "failure.sns.txt"):
        assert (SNAPSHOTS / name).read_text().rstrip() in docs, f"docs/notifications.md is out of date with {name}"
    assert (SNAPSHOTS / "training_finished_failed.slack.json").read_text().rstrip() in docs
