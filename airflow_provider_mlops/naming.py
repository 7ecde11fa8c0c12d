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
#: Joins project and model in the names of shared resources (registry group, endpoint). A name
#: may not contain it, so ``<project>--<model>`` splits back one way only: ``a-b/c`` is
#: ``a-b--c`` and ``a/b-c`` is ``a--b-c``. (The old ``<project>-<model>`` gave both ``a-b-c``.)
RESOURCE_JOIN = "--"
NO_JOIN_RULE = f"may not contain '{RESOURCE_JOIN}': it joins project and model in registry and endpoint names"
#: SageMaker's limit for model package group and endpoint names.
MAX_RESOURCE_NAME = 63

DAG_PREFIX = "mlops"
DAG_KINDS = ("train", "deploy", "retrain")
DAG_ID_RE = re.compile(
    r"^mlops__(?P<project>[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)__"
    r"(?P<model>[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)__(?P<kind>train|deploy|retrain)$"
)

#: SageMaker's limit for training, processing and endpoint-config names.
MAX_JOB_NAME = 63


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(NAME_RE.fullmatch(name)) and RESOURCE_JOIN not in name


def dag_id(project: str, model: str, kind: str) -> str:
    """Return ``mlops__<project>__<model>__<kind>``, the only DAG ids this product creates."""
    if kind not in DAG_KINDS:
        raise ValueError(f"DAG kind {kind!r} is not one of {DAG_KINDS}")
    return f"{DAG_PREFIX}__{project}__{model}__{kind}"


def model_group(project: str, model: str) -> str:
    """
    The registry group and default endpoint name of a model: ``<project>--<model>``.

    One-to-one, because names never contain ``--`` (:data:`RESOURCE_JOIN`).
    """
    return f"{project}{RESOURCE_JOIN}{model}"


def legacy_model_group(project: str, model: str) -> str:
    """
    The name releases before the ``--`` join gave: ``<project>-<model>``, which two models can share.

    Kept for finding (and moving) what a model registered or deployed under it.
    """
    return f"{project}-{model}"


def model_ref(group: str) -> str:
    """``PROJECT/MODEL`` for messages, from a registry group (``demo--x`` or an old ``demo-x``)."""
    project, sep, model = group.partition(RESOURCE_JOIN)
    return f"{project}/{model}" if sep else group.replace("-", "/", 1)


def in_own_namespace(project: str, model: str, name: str) -> bool:
    """
    True when ``name`` is a resource name no other model can derive or claim without an override.

    That is ``<project>--<model>``, ``<project>--<model>--<suffix>``, and the old
    ``<project>-<model>`` when neither name has a ``-`` (then it cannot be another model's).
    """
    own = model_group(project, model)
    if name == own or name.startswith(own + RESOURCE_JOIN):
        return True
    return name == legacy_model_group(project, model) and "-" not in project and "-" not in model


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


#: A task that failed this many attempts of its job stops trying: the cause is not passing.
MAX_ATTEMPTS = 20


def attempt_name(job_name_: str, attempt: int) -> str:
    """
    The name of ``attempt`` (1-based) of a task's job: ``<job>``, then ``<job>-a2``, ``-a3``, ...

    Every backend names attempts this way (a retry after a failed or stopped job starts the next
    one). The name stays within 63 characters, the limit of SageMaker job names and Kubernetes
    label values: the job name's hash suffix is always kept, its readable head is shortened.
    """
    name = job_name_ if attempt == 1 else f"{job_name_}-a{attempt}"
    if len(name) <= MAX_JOB_NAME:
        return name
    head, _, digest = job_name_.rpartition("-")
    suffix = f"a{attempt}"
    room = MAX_JOB_NAME - len(digest) - len(suffix) - 2
    return f"{head[:room].rstrip('-')}-{digest}-{suffix}"
