"""
The trigger event (docs/architecture.md, "The Lambda event"): parsing, validation, and what it maps to in Airflow.

::

    {"action": "train" | "deploy" | "retrain", "project": "demo", "model": "breast-cancer",
     "version": "1.0.7", "image": "<registry>/demo/breast-cancer:1.0.7",
     "commit": "<40 hex>", "requested_by": "gitlab:alice:pipeline:4242"}

Every field is required and checked; unknown fields are refused. The DAG id is only ever built
as ``mlops__<project>__<model>__<action>`` from validated names, and the run id is a hash of the
whole event, so the same event always names the same run. The status query (``status.py``)
is checked by the same rules, and accepts only run ids of that shape (:data:`RUN_ID_PATTERN`).

The patterns are copies of ``airflow_provider_mlops.naming`` and ``.versioning`` (this zip must
not import the package); ``tests/lambda/test_lambda_patterns.py`` keeps them equal.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from mlops_trigger.errors import EventError, shown

# Copied from airflow_provider_mlops.naming / .versioning; a test asserts they stay equal.
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$"
NAME_RULE = "1-32 characters of lowercase letters, digits and '-', starting and ending with a letter or digit"
SEMVER_PATTERN = r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,8})$"
SEMVER_RULE = "MAJOR.MINOR.PATCH, three non-negative integers without leading zeros, for example 1.0.3"
DAG_ID_PATTERN = (
    r"^mlops__(?P<project>[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)__"
    r"(?P<model>[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?)__(?P<kind>train|deploy|retrain)$"
)

COMMIT_PATTERN = r"^[0-9a-f]{40}$"
RUN_ID_HASH_LENGTH = 20
#: The only run ids this trigger makes (:attr:`TriggerEvent.run_id`), so the only ones it reads back.
RUN_ID_PATTERN = rf"^trigger__{SEMVER_PATTERN[1:-1]}__[0-9a-f]{{{RUN_ID_HASH_LENGTH}}}$"
REQUESTED_BY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@:/+=-]{0,127}$"
# <registry host>/<repository>[:<tag>][@sha256:<digest>], as ECR spells image URIs.
IMAGE_PATTERN = (
    r"^(?P<registry>[a-z0-9.-]{1,253})/(?P<repository>[a-z0-9][a-z0-9._/-]{0,255})"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)

NAME_RE = re.compile(NAME_PATTERN)
# re.ASCII: without it \d also matches non-ASCII digits such as "١".
SEMVER_RE = re.compile(SEMVER_PATTERN, re.ASCII)
DAG_ID_RE = re.compile(DAG_ID_PATTERN)
COMMIT_RE = re.compile(COMMIT_PATTERN)
RUN_ID_RE = re.compile(RUN_ID_PATTERN, re.ASCII)
REQUESTED_BY_RE = re.compile(REQUESTED_BY_PATTERN)
IMAGE_RE = re.compile(IMAGE_PATTERN)

ACTIONS = ("train", "deploy", "retrain")
FIELDS = ("action", "project", "model", "version", "image", "commit", "requested_by")
#: The run conf the DAGs receive: the event less what the DAG id already says.
CONF_FIELDS = ("version", "image", "commit", "requested_by")
#: A real event is about 300 bytes; anything near this is not one.
MAX_EVENT_BYTES = 4096
COMMIT_TAG_LENGTH = 12  # versioning.image_tags tags images with commit_sha[:12]


@dataclass(frozen=True)
class TriggerEvent:
    action: str
    project: str
    model: str
    version: str
    image: str
    commit: str
    requested_by: str

    @property
    def dag_id(self) -> str:
        return make_dag_id(self.project, self.model, self.action)

    @property
    def run_id(self) -> str:
        """``trigger__<version>__<hash>``: the same event always gives the same run id."""
        canonical = json.dumps(
            {name: getattr(self, name) for name in FIELDS}, sort_keys=True, separators=(",", ":")
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:RUN_ID_HASH_LENGTH]
        return f"trigger__{self.version}__{digest}"

    @property
    def conf(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in CONF_FIELDS}

    def log_fields(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FIELDS}


def make_dag_id(project: str, model: str, kind: str) -> str:
    """``mlops__<project>__<model>__<kind>``: the only place a DAG id is made, from validated names."""
    dag_id = f"mlops__{project}__{model}__{kind}"
    # Belt and braces: the names are validated before they get here.
    if not DAG_ID_RE.fullmatch(dag_id):
        raise EventError(f"{shown(dag_id)} is outside the mlops__ DAG namespace", code="forbidden_dag")
    return dag_id


def decode_payload(raw: Any) -> Any:
    """
    Turn what Lambda hands the function into the event object.

    A direct ``Invoke`` passes parsed JSON; a function URL or API Gateway passes ``{"body": ...}``
    (possibly base64); a test may pass a JSON string or bytes.
    """
    if is_http_event(raw):
        body = raw.get("body")
        if body is None:
            raise EventError("the request has no body: send the trigger event as JSON", code="not_json")
        encoded = raw.get("isBase64Encoded", False)
        if not isinstance(encoded, bool):
            raise EventError(
                f"isBase64Encoded must be a JSON boolean (true or false), got {type(encoded).__name__} {shown(encoded)}",
                code="wrong_type",
                field="isBase64Encoded",
            )
        if encoded:
            try:
                body = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise EventError("the request body is not valid base64", code="not_json") from None
        raw = body
    if isinstance(raw, (bytes, bytearray)):
        if len(raw) > MAX_EVENT_BYTES:
            raise _too_large(len(raw))
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EventError("the event is not UTF-8 text", code="not_json") from None
    if isinstance(raw, str):
        if len(raw.encode("utf-8", "surrogatepass")) > MAX_EVENT_BYTES:
            raise _too_large(len(raw))
        try:
            return json.loads(raw, object_pairs_hook=_refuse_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise EventError(
                f"the event is not JSON ({exc.msg} at char {exc.pos})", code="not_json"
            ) from None
    return raw


def is_http_event(raw: Any) -> bool:
    """A function URL or API Gateway request (``{"body", "headers" | "requestContext"}``), not a direct Invoke."""
    return isinstance(raw, dict) and "body" in raw and ("requestContext" in raw or "headers" in raw)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """
    JSON objects with a key given twice are refused: parsers disagree on which one wins, so a
    validator in front of the Lambda could read one value while the Lambda acts on the other.
    """
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise EventError(
                f"the key {shown(key)} is given twice: give each field once", code="duplicate_key", field=str(key)[:64]
            )
        seen[key] = value
    return seen


def _too_large(size: int) -> EventError:
    return EventError(
        f"the event is {size} bytes; a trigger event is at most {MAX_EVENT_BYTES} bytes",
        status=413,
        code="payload_too_large",
    )


def parse_event(raw: Any, *, ecr_registry: str, repository_prefix: str = "") -> TriggerEvent:
    """
    Validate a raw event and return it as a :class:`TriggerEvent`.

    :param raw: what the Lambda runtime passed to the handler.
    :param ecr_registry: the only registry images may come from, ``<account>.dkr.ecr.<region>.amazonaws.com``.
    :param repository_prefix: an optional prefix of the ECR repository, before ``<project>/<model>``.
    :raises EventError: with a 4xx status that says which field is wrong and how.
    """
    payload = check_string_fields(decode_payload(raw), FIELDS, "a trigger event")
    action = payload["action"]
    if action not in ACTIONS:
        raise EventError(f"action {shown(action)} is not one of {', '.join(ACTIONS)}", field="action")
    for name in ("project", "model"):
        if not NAME_RE.fullmatch(payload[name]):
            raise EventError(f"{name} {shown(payload[name])} is not a valid name: {NAME_RULE}", field=name)
    if not SEMVER_RE.fullmatch(payload["version"]):
        raise EventError(f"version {shown(payload['version'])} is not {SEMVER_RULE}", field="version")
    if not COMMIT_RE.fullmatch(payload["commit"]):
        raise EventError(
            f"commit {shown(payload['commit'])} is not a full git commit SHA (40 lowercase hex characters)",
            field="commit",
        )
    if not REQUESTED_BY_RE.fullmatch(payload["requested_by"]):
        raise EventError(
            f"requested_by {shown(payload['requested_by'])} must be 1-128 characters of letters, digits "
            "and ._@:/+=- (for example gitlab:alice:pipeline:4242)",
            field="requested_by",
        )
    event = TriggerEvent(**{name: payload[name] for name in FIELDS})
    check_image(event, ecr_registry=ecr_registry, repository_prefix=repository_prefix)
    return event


def check_string_fields(payload: Any, fields: tuple[str, ...], what: str) -> dict[str, str]:
    """
    The decoded event as a dict of exactly ``fields``, each a string, or the 4xx that says why not.

    :param what: the kind of event, for messages ("a trigger event").
    """
    if not isinstance(payload, dict):
        raise EventError(
            f"the event must be a JSON object with the fields {', '.join(fields)}; got {type(payload).__name__}",
            code="not_an_object",
        )
    try:
        size = len(json.dumps(payload, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError):
        raise EventError("the event holds values that are not JSON", code="not_json") from None
    if size > MAX_EVENT_BYTES:
        raise _too_large(size)

    unknown = sorted(str(key) for key in payload if key not in fields)
    if unknown:
        raise EventError(
            f"unknown field(s) {shown(unknown, 120)}: {what} has exactly {', '.join(fields)}",
            code="unknown_field",
            field=unknown[0][:64],
        )
    for name in fields:
        if name not in payload:
            raise EventError(f"the field {name!r} is missing", code="missing_field", field=name)
        if not isinstance(payload[name], str):
            raise EventError(
                f"{name} must be a string, got {type(payload[name]).__name__} {shown(payload[name])}",
                code="wrong_type",
                field=name,
            )
    return payload


def check_image(event: TriggerEvent, *, ecr_registry: str, repository_prefix: str = "") -> None:
    """The image must be in ``<registry>/<prefix><project>/<model>``, pinned by this version's tag or a digest."""
    expected_repository = f"{repository_prefix}{event.project}/{event.model}"
    expected = f"{ecr_registry}/{expected_repository}"
    match = IMAGE_RE.fullmatch(event.image)
    if not match:
        raise EventError(
            f"image {shown(event.image)} is not an image URI; expected {expected}:{event.version}",
            field="image",
        )
    if match["registry"] != ecr_registry or match["repository"] != expected_repository:
        raise EventError(
            f"image {shown(event.image)} is outside the ECR repository of {event.project}/{event.model}; "
            f"expected {expected}:<tag>",
            field="image",
        )
    tag, digest = match["tag"], match["digest"]
    allowed_tags = (event.version, event.commit[:COMMIT_TAG_LENGTH])
    if tag is None and digest is None:
        raise EventError(
            f"image {shown(event.image)} is not pinned: add the tag {event.version} or an @sha256 digest",
            field="image",
        )
    if tag is not None and tag not in allowed_tags:
        raise EventError(
            f"image tag {shown(tag)} does not match the event: use {event.version} (the version) "
            f"or {event.commit[:COMMIT_TAG_LENGTH]} (the commit)",
            field="image",
        )
