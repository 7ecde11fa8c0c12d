"""
Names shared by every part of the product: DAG ids, remote job names, run ids.

Pure standard library, so the Lambda, the CLI and the DAG loader can all import it cheaply.
"""

from __future__ import annotations

import hashlib
import re

NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "1-32 characters of lowercase letters, digits and '-', starting and ending with a letter or digit"

DAG_PREFIX = "mlops"
DAG_KINDS = ("train", "deploy", "retrain")
DAG_ID_RE = re.compile(
    r"^mlops__(?P<project>[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)__"
    r"(?P<model>[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)__(?P<kind>train|deploy|retrain)$"
)

#: SageMaker's limit for training, processing and endpoint-config names.
MAX_JOB_NAME = 63


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(NAME_RE.fullmatch(name))


def dag_id(project: str, model: str, kind: str) -> str:
    """Return ``mlops__<project>__<model>__<kind>``, the only DAG ids this product creates."""
    if kind not in DAG_KINDS:
        raise ValueError(f"DAG kind {kind!r} is not one of {DAG_KINDS}")
    return f"{DAG_PREFIX}__{project}__{model}__{kind}"


def model_group(project: str, model: str) -> str:
    """The registry group (and ECR repository suffix) of a model: ``<project>-<model>``."""
    return f"{project}-{model}"


def short_hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:length]


def job_name(dag_id_: str, run_id: str, task_id: str, *, prefix: str = "") -> str:
    """
    A deterministic remote job name for one task of one DAG run, within 63 characters.

    The name does not depend on the try number, so a retried task finds the job its earlier
    try started and re-attaches to it instead of starting a second one.
    """
    match = DAG_ID_RE.fullmatch(dag_id_)
    readable = f"{match['project']}-{match['model']}" if match else re.sub(r"[^a-z0-9-]", "-", dag_id_.lower())
    step = re.sub(r"[^a-z0-9-]", "-", task_id.lower())
    suffix = short_hash(dag_id_, run_id, task_id)
    head = "-".join(p for p in (prefix, readable, step) if p)
    head = re.sub(r"-+", "-", head).strip("-")
    room = MAX_JOB_NAME - len(suffix) - 1
    return f"{head[:room].rstrip('-')}-{suffix}"
