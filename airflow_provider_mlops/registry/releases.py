"""
Releases, and the model versions trained from them.

Two version series meet here:

- a *release* is what CI builds and tags: the image version ``MAJOR.MINOR.<build number>``, the
  image reference and the commit (the DAG run conf's ``version``, ``image``, ``commit``, and the
  ``release.json`` that CI publishes beside a model's mlops.yaml);
- a *model version* ``MAJOR.MINOR.<registry patch>`` records in its lineage the release it was
  trained from: ``image_version``, ``image``, ``commit``.

These functions map one to the other over a registry's version list. They read no registry and
import no Airflow, so the operators, the CLI and the tests share them.

.. seealso:: ``docs/versions.md``
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_provider_mlops.exceptions import ConfigError, DeployRefusedError, VersionNotFoundError
from airflow_provider_mlops.registry.base import REJECTED, ModelVersion
from airflow_provider_mlops.versioning import SEMVER_RE, SemVer

#: The file CI's publish job writes beside a model's mlops.yaml.
RELEASE_FILE = "release.json"
COMMIT_PATTERN = r"^[0-9a-f]{7,40}$"


def is_code_digest(image: str | None) -> bool:
    """True for the code digest (``sha256:...``) that local training records instead of an image."""
    return bool(image) and str(image).startswith("sha256:")


@dataclass(frozen=True)
class Release:
    """
    One CI release: what names an image build. Any field may be unknown.

    :param version: the image version, ``MAJOR.MINOR.<build number>``.
    :param image: the image reference CI pushed.
    :param commit: the git commit the image was built from.
    """

    version: str | None = None
    image: str | None = None
    commit: str | None = None

    def __bool__(self) -> bool:
        return bool(self.version or self.image or self.commit)

    def describe(self) -> str:
        """``version 0.3.7, image ..., commit ...``: the fields that are known."""
        parts = [f"{key} {value}" for key, value in (("version", self.version), ("image", self.image),
                                                      ("commit", self.commit)) if value]
        return ", ".join(parts) or "(none)"

    def train_conf(self, series: str) -> dict[str, str]:
        """
        The train DAG run conf that trains from this release.

        :param series: the config's current ``MAJOR.MINOR``; a version of another series is left
            out (the train DAG refuses it), the image and commit still travel.
        :return: ``{"version", "image", "commit"}``, the known ones only.
        """
        conf: dict[str, str] = {}
        if self.version and SemVer.parse(self.version).series == series:
            conf["version"] = self.version
        if self.image:
            conf["image"] = self.image
        if self.commit:
            conf["commit"] = self.commit
        return conf


def release_of(version: ModelVersion) -> Release:
    """The release a model version was trained from, as its lineage records it."""
    lineage = version.lineage
    image = lineage.get("image")
    return Release(
        version=lineage.get("image_version"),
        image=None if is_code_digest(image) else image,
        commit=lineage.get("commit"),
    )


def _same_commit(a: str, b: str) -> bool:
    """Full and short SHAs of one commit are the same commit."""
    return a.startswith(b) or b.startswith(a)


def trained_from(version: ModelVersion, release: Release) -> bool:
    """
    Whether ``version`` was trained from ``release``.

    It matches on the image version or the image; the commit, when both sides know it, must
    agree too. A release given by its commit alone matches on the commit.
    """
    lineage = version.lineage
    if release.version or release.image:
        matched = bool(release.version and lineage.get("image_version") == release.version) or bool(
            release.image and lineage.get("image") == release.image
        )
    else:
        matched = bool(release.commit and lineage.get("commit"))
    if matched and release.commit and lineage.get("commit"):
        matched = _same_commit(release.commit, str(lineage["commit"]))
    return matched


def gate_passed(version: ModelVersion) -> bool:
    return bool(version.gate.get("passed"))


def deployable(version: ModelVersion) -> bool:
    """A version a release may deploy: its gate passed and nobody rejected it."""
    return gate_passed(version) and version.status != REJECTED


def gate_summary(version: ModelVersion) -> str:
    """``0.3.1 (gate failed: r2; Rejected)``: one version's gate result and status, for messages."""
    if not version.gate:
        gate = "no gate result"
    elif gate_passed(version):
        gate = "gate passed"
    else:
        failed = [str(row.get("metric")) for row in version.gate.get("rows", []) if not row.get("passed")]
        gate = "gate failed" + (f": {', '.join(failed)}" if failed else "")
    return f"{version.semver} ({gate}; {version.status})"


def known_releases(versions: list[ModelVersion]) -> list[str]:
    """The releases a registry's versions were trained from, oldest first, for messages."""
    seen: list[str] = []
    for version in versions:
        release = release_of(version)
        label = release.version or release.image
        if label and label not in seen:
            seen.append(label)
    return seen


def resolve_release(
    group: str, versions: list[ModelVersion], release: Release,
    deployable: Callable[[ModelVersion], bool] = deployable,
) -> ModelVersion:
    """
    The model version to deploy for a release: the newest one trained from it that passed its gate.

    :param group: the model's registry group, for messages.
    :param versions: every version of the group.
    :param release: what the run conf named.
    :param deployable: which versions count (default: gate passed, not Rejected; the deploy DAG
        also counts an override recorded by an allowed person).
    :return: the newest deployable version trained from ``release``.
    :raises VersionNotFoundError: no version was trained from ``release``.
    :raises DeployRefusedError: every version trained from it failed its gate or was Rejected.
    """
    trained = [v for v in versions if trained_from(v, release)]
    if not trained:
        known = known_releases(versions)
        message = (
            f"{group} has no model version trained from the release {release.describe()}; releases the "
            f"registry knows: {', '.join(known) if known else 'none (no version records a release)'}"
        )
        if release.version and any(v.semver == release.version for v in versions):
            message += (
                f'. {release.version} is a model version: did you mean {{"model_version": "{release.version}"}}? '
                '"version" in a deploy conf names the release (the image version CI tags)'
            )
        else:
            message += ". Train that release first (the CI pipeline's train job), or pass an explicit " \
                       '{"model_version": "X.Y.Z"}'
        raise VersionNotFoundError(message)
    passing = [v for v in trained if deployable(v)]
    if not passing:
        raise DeployRefusedError(
            f"{group}: the release {release.describe()} trained {', '.join(gate_summary(v) for v in trained)}; "
            "none passed its gate without being Rejected, so none can be deployed. Train the release again, "
            "or deploy another model version"
        )
    return max(passing, key=lambda v: SemVer.parse(v.semver))


class _ReleaseFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    project: str
    model: str
    version: Annotated[str, Field(pattern=SEMVER_RE.pattern)]
    image: Annotated[str, Field(min_length=1, max_length=512)]
    commit: Annotated[str, Field(pattern=COMMIT_PATTERN)]


def read_release_file(path: Path, project: str, model: str) -> Release | None:
    """
    The release in CI's ``release.json`` at ``path``; None when there is no such file.

    :param path: the file, beside the model's mlops.yaml.
    :param project: the config's project; the file must name the same one.
    :param model: the config's model; the file must name the same one.
    :raises ConfigError: the file is not JSON, misses a key, has a bad value or names another model.
    """
    if not path.is_file():
        return None
    fix = "publish the model again (the CI pipeline's publish job writes this file), or delete it"
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"is not JSON: {exc}", path=str(path), fix=fix) from None
    try:
        parsed = _ReleaseFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(
            f"{error['msg']}; a release names project, model, version (MAJOR.MINOR.BUILD), image and commit "
            "(7-40 lowercase hex characters)",
            path=str(path), field=".".join(map(str, error["loc"])) or None,
            value=error.get("input") if error["loc"] else None, fix=fix,
        ) from None
    for key, expected in (("project", project), ("model", model)):
        if getattr(parsed, key) != expected:
            raise ConfigError(
                f"names {key} {getattr(parsed, key)!r}, but the mlops.yaml beside it is {expected!r}",
                path=str(path), field=key, fix=fix,
            )
    return Release(version=parsed.version, image=parsed.image, commit=parsed.commit)


def last_release(release_file: Path, project: str, model: str, versions: list[ModelVersion]) -> tuple[Release, str]:
    """
    The model's last release, for a retrain: CI's ``release.json``, else the lineage of the newest
    version that records one (its ``image_version``).

    :param release_file: ``release.json`` beside the model's mlops.yaml.
    :param project: the config's project.
    :param model: the config's model.
    :param versions: the model's registered versions, oldest first.
    :return: the release (empty when none is known) and where it was read from.
    """
    published = read_release_file(release_file, project, model)
    if published is not None:
        return published, str(release_file)
    for version in reversed(versions):
        release = release_of(version)
        if release.version:
            return release, f"the lineage of version {version.semver}"
    return Release(), "nowhere: no release.json and no version records a release"
