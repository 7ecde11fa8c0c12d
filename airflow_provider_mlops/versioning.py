"""
Semantic versions of models and images.

``MAJOR.MINOR`` come from the model repository (``version:`` in mlops.yaml, bumped by people).
``PATCH`` is allocated by the registry at registration and counts the trainings registered
within ``MAJOR.MINOR``. Registries derive it from their own atomic ordering (SQLite's
serialised writes locally, ``ModelPackageVersion`` on SageMaker), never from read-max-then-write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

# re.ASCII: \d must not match other scripts' digits ("1.0.1\u0660").
SERIES_RE = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$", re.ASCII)
SEMVER_RE = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,8})$", re.ASCII)
SERIES_RULE = "MAJOR.MINOR, two non-negative integers without leading zeros, for example 1.0"
SEMVER_RULE = "MAJOR.MINOR.PATCH, three non-negative integers without leading zeros, for example 1.0.3"


@total_ordering
@dataclass(frozen=True)
class SemVer:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = SEMVER_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"{text!r} is not a semantic version: expected {SEMVER_RULE}")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    @property
    def series(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)


def parse_series(text: str) -> tuple[int, int]:
    """Parse ``MAJOR.MINOR`` as written in mlops.yaml."""
    match = SERIES_RE.fullmatch(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a version series: expected {SERIES_RULE}")
    return int(match[1]), int(match[2])


def is_semver(text: object) -> bool:
    return isinstance(text, str) and bool(SEMVER_RE.fullmatch(text))


def image_tags(series: str, build_number: int, commit_sha: str) -> list[str]:
    """
    The tags CI puts on a model image: the build's semver and the short commit SHA.

    CI numbers builds within a series with its pipeline id; the registry numbers trainings. The
    two agree on ``MAJOR.MINOR``, which both read from mlops.yaml.
    """
    major, minor = parse_series(series)
    if build_number < 0:
        raise ValueError(f"build number must be >= 0, got {build_number}")
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit_sha):
        raise ValueError(f"{commit_sha!r} is not a git commit SHA (7-40 lowercase hex characters)")
    return [f"{major}.{minor}.{build_number}", commit_sha[:12]]
