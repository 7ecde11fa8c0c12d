"""
Fetch the model repository's bundle from the upstream job's artifacts, and unpack it safely.

    python3 scripts/ci/upstream.py fetch --dest model

The model repository's ``mlops:bundle`` job (ci/model-repo.gitlab-ci.yml) leaves two artifacts:
``mlops-bundle.tar.gz`` (the repository at the commit) and ``mlops-bundle.json`` (which commit).
This downloads them through the GitLab API, ``GET /projects/:id/jobs/:job_id/artifacts``,
authenticated with ``CI_JOB_TOKEN`` (the model project must list this project in its job token
allowlist), or with ``MLOPS_UPSTREAM_TOKEN`` (a read_api token) when that is set. The token is
sent as a header, never on a command line. The bundle must be of ``MLOPS_UPSTREAM_COMMIT_SHA``,
and its members may not leave the destination folder.

Reads: MLOPS_GITLAB_API_URL (the instance's /api/v4), MLOPS_UPSTREAM_PROJECT_ID, MLOPS_UPSTREAM_JOB_ID, MLOPS_UPSTREAM_COMMIT_SHA,
CI_JOB_TOKEN or MLOPS_UPSTREAM_TOKEN.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

BUNDLE = "mlops-bundle.tar.gz"
MANIFEST = "mlops-bundle.json"
MAX_ARTIFACTS_BYTES = 512 * 1024 * 1024


class FetchError(Exception):
    pass


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise FetchError(
            f"{name} is not set: the model repository's trigger job passes it "
            "(ci/model-repo.gitlab-ci.yml); see docs/onboarding.md"
        )
    return value


def artifacts_url() -> str:
    project = _env("MLOPS_UPSTREAM_PROJECT_ID")
    if not re.fullmatch(r"\d+", project):
        raise FetchError(f"MLOPS_UPSTREAM_PROJECT_ID must be a project id (digits), got {project!r}")
    job = _env("MLOPS_UPSTREAM_JOB_ID")
    if not re.fullmatch(r"\d+", job):
        raise FetchError(f"MLOPS_UPSTREAM_JOB_ID must be a job id (digits), got {job!r}")
    api = _env("MLOPS_GITLAB_API_URL")
    if not api.startswith("https://") and os.environ.get("GITLAB_CI") == "true":
        raise FetchError(f"MLOPS_GITLAB_API_URL must be https, got {api!r}")
    return f"{api.rstrip('/')}/projects/{project}/jobs/{job}/artifacts"


def auth_header() -> tuple[str, str]:
    if os.environ.get("MLOPS_UPSTREAM_TOKEN"):
        return "PRIVATE-TOKEN", os.environ["MLOPS_UPSTREAM_TOKEN"]
    return "JOB-TOKEN", _env("CI_JOB_TOKEN")


def download(url: str, header: tuple[str, str], timeout: float = 120) -> bytes:
    request = urllib.request.Request(url, headers={header[0]: header[1]})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(MAX_ARTIFACTS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        hint = {
            401: "the token was refused",
            403: "this project may not read the model project's artifacts: add it to the model "
            "project's CI/CD job token allowlist (Settings > CI/CD > Job token permissions), "
            "or set MLOPS_UPSTREAM_TOKEN",
            404: "no such job or no artifacts: did the model repository's mlops:bundle job run and "
            "keep its artifacts?",
        }.get(exc.code, "")
        raise FetchError(f"GET {url} answered {exc.code}. {hint}".strip()) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise FetchError(f"GET {url} failed: {getattr(exc, 'reason', exc)}") from None
    if len(data) > MAX_ARTIFACTS_BYTES:
        raise FetchError(f"the artifacts archive is over {MAX_ARTIFACTS_BYTES} bytes")
    return data


def unpack(artifacts_zip: bytes, dest: Path, commit: str) -> dict[str, object]:
    """Check the manifest's commit, then extract the bundle into ``dest`` with tarfile's data filter."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(artifacts_zip))
        names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise FetchError("the artifacts are not a zip archive") from None
    missing = {BUNDLE, MANIFEST} - names
    if missing:
        raise FetchError(
            f"the artifacts lack {', '.join(sorted(missing))}: is the upstream job mlops:bundle?"
        )
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except ValueError:
        raise FetchError(f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("commit") != commit:
        found = manifest.get("commit") if isinstance(manifest, dict) else None
        raise FetchError(f"the bundle is of commit {found!r}, not MLOPS_UPSTREAM_COMMIT_SHA {commit!r}")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive.read(BUNDLE)), mode="r:gz") as bundle:
            bundle.extractall(
                dest, filter="data"
            )  # refuses absolute paths, '..', device files, outside links
    except (tarfile.TarError, OSError) as exc:
        raise FetchError(f"cannot unpack {BUNDLE}: {exc}") from None
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upstream.py", description=__doc__.splitlines()[1])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="download and unpack the upstream bundle")
    fetch.add_argument("--dest", type=Path, default=Path("model"))
    args = parser.parse_args(argv)
    try:
        commit = _env("MLOPS_UPSTREAM_COMMIT_SHA")
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise FetchError(f"MLOPS_UPSTREAM_COMMIT_SHA must be a full commit SHA, got {commit!r}")
        url = artifacts_url()
        manifest = unpack(download(url, auth_header()), args.dest, commit)
    except FetchError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(
        f"unpacked {manifest.get('project_path', 'the model repository')} at {commit[:12]} into {args.dest}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
