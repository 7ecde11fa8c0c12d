"""
The AWS calls of the MLOps pipeline's jobs, for the shell scripts beside this file.

    python3 scripts/ci/ci_aws.py <command> [options]

==================  ==========================================================================
command             what it does
==================  ==========================================================================
ecr-registry        print the account's ECR registry host (``MLOPS_ECR_REGISTRY`` overrides)
ecr-password        print a docker login password for that registry (pipe it to --password-stdin)
ecr-digest          print the digest of ``repository:tag``; exit 3 if the repository is missing,
                    4 if the tag is
s3-check-owner      fail if another GitLab project published that key (a project/model name clash)
s3-publish-folder   upload a staged config folder under its prefix (the config after the files it
                    names), never over another GitLab project's object; delete what an earlier
                    publish of this project left and this one did not upload
s3-get              download one object to a file; exit 4 if there is none
s3-release          read ``release.json`` and print ``version image commit`` after checking them
s3-models           print ``project/model`` for every config published under a prefix
make-event          print the trigger Lambda's event as JSON
invoke              invoke the trigger Lambda with an event file; print its answer; write dotenv
==================  ==========================================================================

boto3 reads credentials and ``AWS_ENDPOINT_URL`` from the environment, so tests point every
command at a moto server without a flag. ``invoke`` calls the handler in this process instead
of Lambda when ``MLOPS_TRIGGER_LOCAL_HANDLER`` names the folder that holds ``handler.py``.

Exit codes: 0 done; 1 failed (do not retry); 3/4 see ecr-digest (4 also: s3-get found no object);
75 failed, worth retrying.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_NO_REPOSITORY = 3
EXIT_NO_IMAGE = 4
EXIT_RETRY = 75
OWNER_KEY = "gitlab-project"  # S3 object metadata: the GitLab project that published the object
NAME = r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?"


class CiError(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


# --- ECR ------------------------------------------------------------------------------------


def ecr_registry(_: argparse.Namespace) -> str:
    if os.environ.get("MLOPS_ECR_REGISTRY"):
        return os.environ["MLOPS_ECR_REGISTRY"]
    data = client("ecr").get_authorization_token()["authorizationData"][0]
    return re.sub(r"^https?://", "", data["proxyEndpoint"]).rstrip("/")


def ecr_password(_: argparse.Namespace) -> str:
    import base64

    token = client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    return password


def ecr_digest(args: argparse.Namespace) -> str:
    from botocore.exceptions import ClientError

    try:
        images = client("ecr").describe_images(
            repositoryName=args.repository, imageIds=[{"imageTag": args.tag}]
        )["imageDetails"]
    except ClientError as exc:
        code = _error_code(exc)
        if code == "RepositoryNotFoundException":
            raise CiError(
                f"the ECR repository {args.repository} does not exist. The platform team creates one per "
                f'model: add "{args.repository}" to `models` in terraform/envs/<environment>.tfvars',
                EXIT_NO_REPOSITORY,
            ) from None
        if code == "ImageNotFoundException":
            raise CiError(f"{args.repository}:{args.tag} is not in ECR", EXIT_NO_IMAGE) from None
        raise
    if not images:
        raise CiError(f"{args.repository}:{args.tag} is not in ECR", EXIT_NO_IMAGE)
    return str(images[0]["imageDigest"])


# --- S3 -------------------------------------------------------------------------------------


def check_owner(bucket: str, key: str, owner: str) -> None:
    """Refuse a key that another GitLab project published: two teams chose the same names."""
    from botocore.exceptions import ClientError

    if not owner:
        raise CiError("no owner: set MLOPS_UPSTREAM_PROJECT_PATH (the model repository's path)")
    try:
        head = client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return
        raise
    published_by = head.get("Metadata", {}).get(OWNER_KEY)
    if published_by and published_by != owner:
        raise CiError(
            f"s3://{bucket}/{key} was published by the GitLab project {published_by}, not {owner}: "
            "another team already uses this project/model name. Rename the model in mlops.yaml, or "
            "ask the platform team to move the old one"
        )


def s3_check_owner(args: argparse.Namespace) -> str:
    check_owner(args.bucket, args.key, args.owner)
    return ""


CONFIG_NAME = "mlops.yaml"
RELEASE_NAME = "release.json"
CONTENT_TYPES = {".yaml": "application/yaml", ".yml": "application/yaml", ".json": "application/json"}


def _content_type(path: str) -> str:
    import mimetypes

    suffix = Path(path).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _owners_under(s3: Any, bucket: str, prefix: str) -> dict[str, str]:
    """``key -> GitLab project`` of every object under ``prefix`` ("" when no project published it)."""
    owners = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            head = s3.head_object(Bucket=bucket, Key=item["Key"])
            owners[item["Key"]] = head.get("Metadata", {}).get(OWNER_KEY, "")
    return owners


def s3_publish_folder(args: argparse.Namespace) -> str:
    """
    Publish a staged config folder: every file under ``--folder`` to ``--prefix/<same path>``,
    the config after the files it names and release.json last, so the loader never reads a
    config whose files are not there yet. Then delete the objects under the prefix that this
    GitLab project published before and this publish did not upload (a renamed data file must
    not stay in a channel folder). Nothing is written if any key to write belongs to another project.
    """
    folder = Path(args.folder)
    prefix = args.prefix.strip("/") + "/"
    files = {
        path.relative_to(folder).as_posix(): path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
    if CONFIG_NAME not in files:
        raise CiError(f"{folder} holds no {CONFIG_NAME}: nothing to publish")
    if RELEASE_NAME in files:
        raise CiError(f"{folder}/{RELEASE_NAME}: the model's files may not hold a {RELEASE_NAME} beside the config")
    files[RELEASE_NAME] = Path(args.release)
    order = sorted(files, key=lambda rel: (rel in (CONFIG_NAME, RELEASE_NAME), rel == RELEASE_NAME, rel))
    s3 = client("s3")
    owners = _owners_under(s3, args.bucket, prefix)
    taken = sorted(prefix + rel for rel in order if owners.get(prefix + rel) not in (None, "", args.owner))
    if taken:
        raise CiError(
            f"s3://{args.bucket}/{taken[0]} was published by the GitLab project {owners[taken[0]]}, not {args.owner}: "
            "another team already uses this project/model name. Rename the model in mlops.yaml, or "
            "ask the platform team to move the old one"
        )
    for rel in order:
        s3.put_object(
            Bucket=args.bucket,
            Key=prefix + rel,
            Body=files[rel].read_bytes(),
            ContentType=_content_type(rel),
            Metadata={OWNER_KEY: args.owner},
        )
        print(f"published s3://{args.bucket}/{prefix}{rel}", file=sys.stderr)
    written = {prefix + rel for rel in order}
    stale = sorted(key for key, owner in owners.items() if owner == args.owner and key not in written)
    kept = sorted(key for key, owner in owners.items() if owner != args.owner and key not in written)
    for key in kept:
        print(f"kept s3://{args.bucket}/{key}: not published by {args.owner}", file=sys.stderr)
    _delete(s3, args.bucket, stale)
    summary = f"published {len(order)} object(s) under s3://{args.bucket}/{prefix}"
    return summary + (f"; deleted {len(stale)} left by an earlier publish" if stale else "")


def _delete(s3: Any, bucket: str, keys: list[str]) -> None:
    from botocore.exceptions import ClientError

    failed: list[str] = []
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        try:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        except ClientError as exc:
            failed += [f"{k} ({_error_code(exc)})" for k in batch]
            continue
        errors = {e["Key"]: e.get("Code", "error") for e in answer.get("Errors", [])}
        failed += [f"{key} ({code})" for key, code in errors.items()]
        for key in batch:
            if key not in errors:
                print(f"deleted s3://{bucket}/{key}: not in this publish", file=sys.stderr)
    if failed:
        raise CiError(
            f"the config is published, but {len(failed)} object(s) an earlier publish left could not be deleted, and "
            f"the DAG loader still sees them: {', '.join(failed[:10])}. Allow s3:DeleteObject on the configs prefix "
            "to the CI role (terraform/modules/iam), or delete them by hand"
        )


def s3_get(args: argparse.Namespace) -> str:
    from botocore.exceptions import ClientError

    try:
        body = client("s3").get_object(Bucket=args.bucket, Key=args.key)["Body"].read()
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise CiError(f"s3://{args.bucket}/{args.key} does not exist", EXIT_NO_IMAGE) from None
        raise CiError(f"cannot read s3://{args.bucket}/{args.key}: {_error_code(exc)}") from None
    Path(args.file).write_bytes(body)
    return ""


RELEASE_PATTERNS = {
    "version": r"(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,8})",
    "image": r"[a-z0-9.-]+/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?",
    "commit": r"[0-9a-f]{40}",
}


def s3_release(args: argparse.Namespace) -> str:
    """Print ``version image commit`` of a published release.json, each checked, for ``read``."""
    from botocore.exceptions import ClientError

    try:
        body = client("s3").get_object(Bucket=args.bucket, Key=args.key)["Body"].read()
    except ClientError as exc:
        raise CiError(f"cannot read s3://{args.bucket}/{args.key}: {_error_code(exc)}") from None
    try:
        release = json.loads(body)
    except ValueError:
        raise CiError(f"s3://{args.bucket}/{args.key} is not JSON") from None
    values = []
    for name, pattern in RELEASE_PATTERNS.items():
        value = release.get(name) if isinstance(release, dict) else None
        if not isinstance(value, str) or not re.fullmatch(pattern, value, re.ASCII):
            raise CiError(f"s3://{args.bucket}/{args.key}: {name} is missing or malformed")
        values.append(value)
    return " ".join(values)


def s3_models(args: argparse.Namespace) -> str:
    prefix = args.prefix.strip("/") + "/"
    found = []
    paginator = client("s3").get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=args.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            match = re.fullmatch(rf"{re.escape(prefix)}({NAME})/({NAME})/mlops\.yaml", item["Key"])
            if match:
                found.append(f"{match[1]}/{match[2]}")
    return "\n".join(sorted(found))


# --- the trigger Lambda ---------------------------------------------------------------------


def make_event(args: argparse.Namespace) -> str:
    event = {
        name: getattr(args, name)
        for name in ("action", "project", "model", "version", "image", "commit", "requested_by")
    }
    return json.dumps(event, sort_keys=True)


def invoke(args: argparse.Namespace) -> str:
    """Invoke the trigger; 2xx writes the dotenv, 404/5xx from Airflow are retryable, the rest fail."""
    payload = Path(args.event_file).read_bytes()
    answer = (
        _invoke_local(payload)
        if os.environ.get("MLOPS_TRIGGER_LOCAL_HANDLER")
        else _invoke_lambda(args.function, payload)
    )
    print(f"trigger answered: {json.dumps(answer, sort_keys=True)}", file=sys.stderr)
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    if isinstance(status, int) and 200 <= status < 300:
        if args.dotenv:
            with open(args.dotenv, "a", encoding="utf-8") as out:
                out.write(f"MLOPS_DAG_ID={answer['dag_id']}\nMLOPS_DAG_RUN_ID={answer['dag_run_id']}\n")
        return f"{'created' if answer.get('created') else 'already existed'}: {answer['dag_id']} run {answer['dag_run_id']}"
    message = answer.get("message") if isinstance(answer, dict) else answer
    error = answer.get("error") if isinstance(answer, dict) else "no_answer"
    retry = status in (404, 502, 503, 504) or error in ("dag_not_found", "airflow_unreachable")
    raise CiError(f"the trigger refused ({status} {error}): {message}", EXIT_RETRY if retry else EXIT_FAILED)


def _invoke_lambda(function: str | None, payload: bytes) -> Any:
    if not function:
        raise CiError("MLOPS_TRIGGER_FUNCTION is not set: name the trigger Lambda (its name or ARN)")
    import boto3
    from botocore.config import Config

    lam = boto3.client("lambda", config=Config(read_timeout=70, retries={"max_attempts": 2}))
    response = lam.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=payload)
    body = response["Payload"].read()
    if response.get("FunctionError"):
        raise CiError(f"the trigger Lambda crashed ({response['FunctionError']}): {body[:500]!r}", EXIT_RETRY)
    return json.loads(body)


def _invoke_local(payload: bytes) -> Any:
    """Call ``handler.handler`` in this process: what the Lambda runtime would do, without Docker."""
    sys.path.insert(0, os.environ["MLOPS_TRIGGER_LOCAL_HANDLER"])
    import handler  # type: ignore[import-not-found]

    class Context:
        aws_request_id = f"local-{os.getpid()}"
        invoked_function_arn = os.environ.get("MLOPS_TRIGGER_LOCAL_ARN", "")

    answer = handler.handler(json.loads(payload), Context())
    sys.stdout.flush()
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ci_aws.py", description=__doc__.splitlines()[1])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ecr-registry").set_defaults(run=ecr_registry)
    commands.add_parser("ecr-password").set_defaults(run=ecr_password)
    digest = commands.add_parser("ecr-digest")
    digest.add_argument("--repository", required=True)
    digest.add_argument("--tag", required=True)
    digest.set_defaults(run=ecr_digest)
    publish = commands.add_parser("s3-publish-folder")
    for name in ("--bucket", "--prefix", "--folder", "--release", "--owner"):
        publish.add_argument(name, required=True)
    publish.set_defaults(run=s3_publish_folder)
    get = commands.add_parser("s3-get")
    for name in ("--bucket", "--key", "--file"):
        get.add_argument(name, required=True)
    get.set_defaults(run=s3_get)
    owner = commands.add_parser("s3-check-owner")
    for name in ("--bucket", "--key", "--owner"):
        owner.add_argument(name, required=True)
    owner.set_defaults(run=s3_check_owner)
    release = commands.add_parser("s3-release")
    release.add_argument("--bucket", required=True)
    release.add_argument("--key", required=True)
    release.set_defaults(run=s3_release)
    models = commands.add_parser("s3-models")
    models.add_argument("--bucket", required=True)
    models.add_argument("--prefix", required=True)
    models.set_defaults(run=s3_models)
    event = commands.add_parser("make-event")
    for name in ("--action", "--project", "--model", "--version", "--image", "--commit", "--requested-by"):
        event.add_argument(name, required=True)
    event.set_defaults(run=make_event)
    call = commands.add_parser("invoke")
    call.add_argument("--event-file", required=True)
    call.add_argument("--function", default=os.environ.get("MLOPS_TRIGGER_FUNCTION"))
    call.add_argument("--dotenv", help="append MLOPS_DAG_ID and MLOPS_DAG_RUN_ID here on success")
    call.set_defaults(run=invoke)
    args = parser.parse_args(argv)
    try:
        output = args.run(args)
    except CiError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return exc.code
    if output:
        print(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
