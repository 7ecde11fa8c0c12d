"""The Lambda's copies of the package's patterns must never drift from the originals."""

from __future__ import annotations

import re

from mlops_trigger import event as lambda_event

from airflow_provider_mlops import naming, versioning


def test_name_pattern_is_the_packages():
    assert lambda_event.NAME_PATTERN == naming.NAME_PATTERN
    assert lambda_event.NAME_RULE == naming.NAME_RULE


def test_semver_pattern_is_the_packages():
    assert versioning.SEMVER_RE.pattern == lambda_event.SEMVER_PATTERN
    assert lambda_event.SEMVER_RULE == versioning.SEMVER_RULE


def test_dag_id_pattern_is_the_packages():
    assert naming.DAG_ID_RE.pattern == lambda_event.DAG_ID_PATTERN
    assert lambda_event.ACTIONS == naming.DAG_KINDS


def test_dag_ids_agree_with_the_package():
    event = lambda_event.TriggerEvent("deploy", "demo", "breast-cancer", "1.0.1", "i", "0" * 40, "x")
    assert event.dag_id == naming.dag_id("demo", "breast-cancer", "deploy")


def test_commit_tag_agrees_with_the_packages_image_tags():
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert re.fullmatch(lambda_event.COMMIT_PATTERN, commit)
    semver_tag, commit_tag = versioning.image_tags("1.0", 7, commit)
    assert commit_tag == commit[: lambda_event.COMMIT_TAG_LENGTH]
    assert re.fullmatch(lambda_event.SEMVER_PATTERN, semver_tag)
